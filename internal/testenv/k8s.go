package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TokenReviewServer stands in for a Kubernetes API server where Vault's
// kubernetes auth method needs one: POST /apis/authentication.k8s.io/v1/tokenreviews
// over TLS. It authenticates the service account JWTs it signed itself (JWT)
// and nothing else, as the API server does with its own tokens.
type TokenReviewServer struct {
	URL     string // https://127.0.0.1:port
	CAPEM   []byte // the certificate Vault must trust (kubernetes_ca_cert)
	key     *ecdsa.PrivateKey
	reviews atomic.Int64
}

// TokenReview starts a TokenReviewServer for t and stops it when t ends.
func TokenReview(t testing.TB) *TokenReviewServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := &TokenReviewServer{key: key}
	srv := httptest.NewTLSServer(http.HandlerFunc(s.review))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	s.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return s
}

// Reviews is how many token reviews authenticated a token so far.
func (s *TokenReviewServer) Reviews() int64 { return s.reviews.Load() }

// JWT signs (ES256) a projected service account token of namespace/name for
// audience, valid for an hour.
func (s *TokenReviewServer) JWT(namespace, name, audience string) string {
	now := time.Now()
	claims := map[string]any{
		"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:" + namespace + ":" + name,
		"aud": []string{audience}, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"kubernetes.io": map[string]any{"namespace": namespace, "serviceaccount": map[string]any{"name": name, "uid": uid(namespace, name)}},
	}
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	signed := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	d := sha256.Sum256([]byte(signed))
	r, sv, err := ecdsa.Sign(rand.Reader, s.key, d[:])
	if err != nil {
		panic(err)
	}
	sig := append(r.FillBytes(make([]byte, 32)), sv.FillBytes(make([]byte, 32))...)
	return signed + "." + enc.EncodeToString(sig)
}

func uid(namespace, name string) string {
	d := sha256.Sum256([]byte(namespace + "/" + name))
	return base64.RawURLEncoding.EncodeToString(d[:12])
}

// claims verifies jwt's signature and returns its claims, or nil.
func (s *TokenReviewServer) claims(jwt string) map[string]any {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil
	}
	d := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(&s.key.PublicKey, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	if err != nil || json.Unmarshal(b, &c) != nil {
		return nil
	}
	if exp, _ := c["exp"].(float64); time.Now().Unix() > int64(exp) {
		return nil
	}
	return c
}

// review answers a TokenReview as the API server does: authenticated with the
// service account's user name, uid and the requested audiences the token has.
// The caller must present a token of ours too (Vault's reviewer JWT).
func (s *TokenReviewServer) review(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Spec struct {
			Token     string   `json:"token"`
			Audiences []string `json:"audiences"`
		} `json:"spec"`
	}
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if r.Method != http.MethodPost || r.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" || !ok || s.claims(bearer) == nil {
		http.Error(w, `{"kind":"Status","status":"Failure","code":401}`, http.StatusUnauthorized)
		return
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, `{"kind":"Status","status":"Failure","code":400}`, http.StatusBadRequest)
		return
	}
	status := map[string]any{"authenticated": false, "error": "invalid bearer token"}
	if c := s.claims(in.Spec.Token); c != nil {
		k, _ := c["kubernetes.io"].(map[string]any)
		sa, _ := k["serviceaccount"].(map[string]any)
		ns, _ := k["namespace"].(string)
		name, _ := sa["name"].(string)
		var auds []string
		aud, _ := c["aud"].([]any)
		for _, a := range aud {
			if as, _ := a.(string); len(in.Spec.Audiences) == 0 || slices.Contains(in.Spec.Audiences, as) {
				auds = append(auds, as)
			}
		}
		status = map[string]any{"authenticated": true, "audiences": auds, "user": map[string]any{
			"username": "system:serviceaccount:" + ns + ":" + name, "uid": uid(ns, name),
			"groups": []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		}}
		s.reviews.Add(1)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status})
}
