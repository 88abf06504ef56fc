package check

import (
	"encoding/json"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

// placeholder is the base's SmartPayments egress CIDR: not a CIDR, so the API
// server refuses the base applied without an overlay that sets the addresses.
const placeholder = "SMARTPAYMENTS-CIDR-NOT-SET"

// overlay is the part of an overlay's kustomization.yaml the test reads.
type overlay struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Patches    []struct {
		Path   string `json:"path"`
		Target struct {
			Group   string `json:"group"`
			Version string `json:"version"`
			Kind    string `json:"kind"`
			Name    string `json:"name"`
		} `json:"target"`
	} `json:"patches"`
}

// jsonOp is one JSON 6902 operation (the overlay uses test and replace).
type jsonOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// smartPaymentsRule is the egress rule on 443, the only one off the cluster.
func smartPaymentsRule(t *testing.T, np *networkingv1.NetworkPolicy) networkingv1.NetworkPolicyEgressRule {
	t.Helper()
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			if p.Port != nil && p.Port.IntVal == 443 {
				return r
			}
		}
	}
	t.Fatal("no egress rule on 443 (SmartPayments)")
	return networkingv1.NetworkPolicyEgressRule{}
}

func TestTheBaseCannotBeAppliedWithoutTheSmartPaymentsAddresses(t *testing.T) {
	np := one[*networkingv1.NetworkPolicy](t, objects(t), "NetworkPolicy")
	r := smartPaymentsRule(t, np)
	if len(r.To) != 1 || r.To[0].IPBlock == nil || r.To[0].IPBlock.CIDR != placeholder {
		t.Fatalf("got SmartPayments destinations %+v, want the one placeholder %s", r.To, placeholder)
	}
	if _, _, err := net.ParseCIDR(placeholder); err == nil {
		t.Fatal("the placeholder is a CIDR: the API server would accept the base alone")
	}
}

// The example overlay, applied to the base as kustomize does (its JSON 6902 ops
// on the NetworkPolicy), gives SmartPayments egress to real CIDRs only, on 443.
func TestTheExampleOverlaySetsTheSmartPaymentsAddresses(t *testing.T) {
	b, err := os.ReadFile("../../overlays/example/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k overlay
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("overlays/example/kustomization.yaml: %v", err)
	}
	if len(k.Resources) != 1 || k.Resources[0] != "../../k8s" || len(k.Patches) != 1 {
		t.Fatalf("got resources %v and %d patches, want the base and one patch", k.Resources, len(k.Patches))
	}
	p := k.Patches[0]
	if p.Target.Kind != "NetworkPolicy" || p.Target.Name != "chdproxy" || p.Target.Group != "networking.k8s.io" {
		t.Fatalf("the patch targets %+v, want the NetworkPolicy chdproxy", p.Target)
	}
	b, err = os.ReadFile("../../overlays/example/" + p.Path)
	if err != nil {
		t.Fatal(err)
	}
	var ops []jsonOp
	if err := yaml.UnmarshalStrict(b, &ops); err != nil {
		t.Fatalf("%s: %v", p.Path, err)
	}
	base, err := os.ReadFile("../networkpolicy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(base, &doc); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if doc, err = apply(doc, op); err != nil {
			t.Fatalf("%s: %s %s: %v", p.Path, op.Op, op.Path, err)
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var np networkingv1.NetworkPolicy
	if err := strictDecode(out, &np); err != nil {
		t.Fatalf("the patched NetworkPolicy: %v", err)
	}
	r := smartPaymentsRule(t, &np)
	if len(r.Ports) != 1 || len(r.To) == 0 {
		t.Fatalf("got SmartPayments egress %+v, want addresses on 443 only", r)
	}
	for _, to := range r.To {
		if to.IPBlock == nil || to.PodSelector != nil || to.NamespaceSelector != nil {
			t.Fatalf("got destination %+v, want an ipBlock", to)
		}
		_, n, err := net.ParseCIDR(to.IPBlock.CIDR)
		if err != nil {
			t.Errorf("%q is not a CIDR", to.IPBlock.CIDR)
			continue
		}
		if ones, _ := n.Mask.Size(); ones < 16 {
			t.Errorf("%s opens /%d: want SmartPayments' own addresses, not a whole range", to.IPBlock.CIDR, ones)
		}
	}
}

// apply runs one test or replace operation of JSON 6902 on doc.
func apply(doc any, op jsonOp) (any, error) {
	keys := strings.Split(strings.TrimPrefix(op.Path, "/"), "/")
	parent, err := walk(doc, keys[:len(keys)-1])
	if err != nil {
		return nil, err
	}
	last := keys[len(keys)-1]
	var cur any
	switch p := parent.(type) {
	case map[string]any:
		cur = p[last]
	case []any:
		i, err := strconv.Atoi(last)
		if err != nil || i < 0 || i >= len(p) {
			return nil, os.ErrNotExist
		}
		cur = p[i]
	}
	switch op.Op {
	case "test":
		if !reflect.DeepEqual(cur, op.Value) {
			return nil, os.ErrInvalid
		}
	case "replace":
		if cur == nil {
			return nil, os.ErrNotExist
		}
		if m, ok := parent.(map[string]any); ok {
			m[last] = op.Value
		} else {
			i, _ := strconv.Atoi(last)
			parent.([]any)[i] = op.Value
		}
	default:
		return nil, os.ErrInvalid // only the operations this test understands
	}
	return doc, nil
}

// walk follows keys (object keys or list indexes) from doc.
func walk(doc any, keys []string) (any, error) {
	for _, k := range keys {
		switch d := doc.(type) {
		case map[string]any:
			doc = d[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(d) {
				return nil, os.ErrNotExist
			}
			doc = d[i]
		default:
			return nil, os.ErrNotExist
		}
	}
	return doc, nil
}
