package check

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// kustomization is the part of kustomization.yaml the test reads.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Labels     []any    `json:"labels"`
	Resources  []string `json:"resources"`
}

// objects decodes every resource of the kustomization, strictly: an unknown
// or misspelt field fails, as does a kind the test does not know.
func objects(t *testing.T) map[string][]any {
	t.Helper()
	b, err := os.ReadFile("../kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	out := map[string][]any{}
	for _, res := range k.Resources {
		b, err := os.ReadFile(filepath.Join("..", res))
		if err != nil {
			t.Fatal(err)
		}
		for doc := range bytes.SplitSeq(b, []byte("\n---\n")) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", res, err)
			}
			obj := newObject(tm.APIVersion + " " + tm.Kind)
			if obj == nil {
				t.Fatalf("%s: unexpected %s %s", res, tm.APIVersion, tm.Kind)
			}
			if err := strictDecode(doc, obj); err != nil {
				t.Fatalf("%s: %v", res, err)
			}
			out[tm.Kind] = append(out[tm.Kind], obj)
		}
	}
	return out
}

// strictDecode is what the API server does with a manifest: field names match
// case-sensitively (encoding/json would take "readOnlyRootFileSystem"), and an
// unknown or repeated field is an error.
func strictDecode(doc []byte, obj any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(j, obj)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func newObject(apiKind string) any {
	switch apiKind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}
	case "v1 Service":
		return &corev1.Service{}
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	}
	return nil
}

func one[T any](t *testing.T, objs map[string][]any, kind string) T {
	t.Helper()
	if len(objs[kind]) != 1 {
		t.Fatalf("got %d %s, want 1", len(objs[kind]), kind)
	}
	return objs[kind][0].(T)
}

func TestDeploymentIsLockedDown(t *testing.T) {
	objs := objects(t)
	d := one[*appsv1.Deployment](t, objs, "Deployment")
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("got %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	switch {
	case pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot:
		t.Error("pod: runAsNonRoot is not true")
	case sc == nil:
		t.Fatal("container: no securityContext")
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532:
		t.Error("container: want runAsNonRoot true and runAsUser 65532")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("container: readOnlyRootFilesystem is not true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("container: allowPrivilegeEscalation is not false")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Error("container: capabilities must drop ALL and add none")
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Error("container: seccompProfile is not RuntimeDefault")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("container: want a CPU request and a memory limit")
	}
	for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.Exec == nil || len(p.Exec.Command) < 4 || p.Exec.Command[1] != "healthcheck" || p.Exec.Command[2] != "--url" {
			t.Errorf("%s probe: want exec chdproxy healthcheck --url …", name)
		}
	}
	if !strings.HasSuffix(c.ReadinessProbe.Exec.Command[3], "/readyz") {
		t.Errorf("readiness probe asks %s, want /readyz", c.ReadinessProbe.Exec.Command[3])
	}
	sa := one[*corev1.ServiceAccount](t, objs, "ServiceAccount")
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken ||
		sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("a service account token is mounted; chdproxy does not use the Kubernetes API")
	}
	for _, v := range pod.Volumes {
		if v.HostPath != nil || v.EmptyDir != nil && v.EmptyDir.Medium != corev1.StorageMediumMemory {
			t.Errorf("volume %s: want no host path or disk-backed scratch space", v.Name)
		}
	}
}

// Each listener has its Service and its own ingress rule; egress goes to DNS,
// Vault, Redis and SmartPayments (https) only.
func TestEveryListenerHasAServiceAndAnIngressRule(t *testing.T) {
	objs := objects(t)
	d := one[*appsv1.Deployment](t, objs, "Deployment")
	ports := map[string]int32{}
	for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
		ports[p.Name] = p.ContainerPort
	}
	services := map[string]bool{}
	for _, o := range objs["Service"] {
		s := o.(*corev1.Service)
		if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].TargetPort.StrVal == "" {
			t.Errorf("service %s: want one port naming its listener", s.Name)
			continue
		}
		services[s.Spec.Ports[0].TargetPort.StrVal] = true
	}
	np := one[*networkingv1.NetworkPolicy](t, objs, "NetworkPolicy")
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Fatal("the NetworkPolicy must restrict both ingress and egress")
	}
	ingress := map[int32]int{}
	for _, r := range np.Spec.Ingress {
		if len(r.From) == 0 {
			t.Error("an ingress rule admits every source")
		}
		for _, p := range r.Ports {
			ingress[p.Port.IntVal]++
		}
	}
	for _, name := range []string{"collect", "forward", "admin"} {
		if !services[name] {
			t.Errorf("listener %s has no Service", name)
		}
		if ingress[ports[name]] != 1 {
			t.Errorf("listener %s (port %d): got %d ingress rules, want 1", name, ports[name], ingress[ports[name]])
		}
	}
	var egressPorts []int32
	for _, r := range np.Spec.Egress {
		if len(r.To) == 0 || len(r.Ports) == 0 {
			t.Error("an egress rule allows every destination or port")
		}
		for _, p := range r.Ports {
			egressPorts = append(egressPorts, p.Port.IntVal)
		}
	}
	slices.Sort(egressPorts)
	if want := []int32{53, 53, 443, 6379, 8200, 26379}; !slices.Equal(egressPorts, want) {
		t.Errorf("egress ports %v, want %v (DNS, SmartPayments, Redis, Vault, Sentinel)", egressPorts, want)
	}
}

func TestScalingKeepsReplicasThroughDisruptions(t *testing.T) {
	objs := objects(t)
	d := one[*appsv1.Deployment](t, objs, "Deployment")
	pdb := one[*policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget")
	hpa := one[*autoscalingv2.HorizontalPodAutoscaler](t, objs, "HorizontalPodAutoscaler")
	if hpa.Spec.ScaleTargetRef.Name != d.Name || hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 {
		t.Error("the HPA must scale the Deployment with at least 2 replicas")
	}
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() >= int(*hpa.Spec.MinReplicas) {
		t.Error("the PDB must leave room for one voluntary disruption at the minimum scale")
	}
	sel := pdb.Spec.Selector.MatchLabels
	for k, v := range sel {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("the PDB selects %s=%s, which the pods do not carry", k, v)
		}
	}
}

// Secrets are referenced, never shipped.
func TestNoSecretIsShipped(t *testing.T) {
	objs := objects(t)
	if len(objs["Secret"]) > 0 {
		t.Error("the base ships a Secret")
	}
	cm := one[*corev1.ConfigMap](t, objs, "ConfigMap")
	for k, v := range cm.Data {
		for _, line := range strings.Split(v, "\n") {
			if strings.Contains(line, "password:") || strings.Contains(line, "token:") {
				t.Errorf("ConfigMap %s holds %q; secrets go in files", k, strings.TrimSpace(line))
			}
		}
	}
}
