package policy

import (
	"testing"

	"github.com/chdproxy/chdproxy/deploy"
)

// FuzzParse: no input makes decoding, linting or explaining panic; every
// problem has a message and no negative line; whatever passes production lint
// passes dev lint too.
func FuzzParse(f *testing.F) {
	f.Add(deploy.PolicyYAML)
	f.Add([]byte(basePolicy))
	f.Add([]byte("version: 1\nupstreams: {a: &x {base_url: 'http://[::1]:1'}}\nroutes: [*x]\n"))
	f.Add([]byte("version: 1\nversion: 1\nroutes:\n  - {<<: {a: 1}, inject: [{field: 'query:x:y'}]}\n---\nx"))
	f.Add([]byte("tokens: {card_ttl: 9999999999h, cvv_ttl: -1ns, wallet_ttl: 1e3}\n"))
	f.Add([]byte("? [a]\n: b\n!!binary x: 1\n1: 2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, probs := lintBytes(b, LintOptions{})
		if p == nil {
			t.Fatal("lintBytes returned a nil policy")
		}
		for _, pr := range probs {
			if pr.Message == "" || pr.Line < 0 {
				t.Fatalf("bad problem %#v", pr)
			}
		}
		_ = Explain(p)
		if len(probs) == 0 {
			if _, devProbs := lintBytes(b, LintOptions{Dev: true}); len(devProbs) > 0 {
				t.Fatalf("valid in production, not in dev: %v", devProbs)
			}
		}
	})
}
