// Package check validates the Kubernetes manifests of deploy/k8s by strict
// decoding into the Kubernetes API types. It is a module of its own so that
// k8s.io/api stays out of chdproxy's module and binary; deploy's tests run it.
package check
