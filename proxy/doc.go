// Package proxy is chdproxy's HTTP side: the collect, forward and admin listeners.
//
// New(Config) is the only way to build them; `chdproxy serve`, `chdproxy dev`,
// chdbench and the tests all go through it. A map of the package:
//
//	new.go          Config, New, Listeners: one assembly of the shared parts
//	server.go       wrap (request id, panics, the one error writer, access log,
//	                outcome audit record), routers, NewServer and Serve
//	auth.go         the authentication layer in front of every keyed route:
//	                key → merchant and key id on the request, then the rate limit
//	keys.go         API keys held as SHA-256 digests, compared in constant time
//	limits.go       token buckets per key and per client address (the TCP peer, or
//	                X-Forwarded-For behind a trusted proxy); in-flight slots towards
//	                Vault and upstream
//	idempotency.go  Idempotency-Key records in Redis, behind authentication
//	collect.go      POST /v1/tokens: card and wallet fields → vault → token metadata
//	                (tokenView: never a fingerprint); CORS on every answer
//	hosted.go       hosted fields on collect (package hosted: collect.js, the frames;
//	                the frames' own-origin POSTs), POST /v1/cvv and, on forward,
//	                POST /v1/tokens/{id}/cvv-sessions: CVV re-collection
//	fields.go       strict reading of flat JSON / form bodies
//	forward.go      the SmartPayments routes: read, plan, detokenize, send, scrub
//	plan.go         injection as a pure plan: which token, which fields, which
//	                attributes (no net/http; table-tested without a server)
//	jsonbody.go     the top-level JSON walk and splice injection relies on
//	rawpan.go       raw card data anywhere in a request (body, query, headers)
//	upstream.go     the one outbound client: policy hosts only, TLS 1.2+, no redirects
//	admin.go        health, readiness, token delete, the policy report
//	audit.go        the audit trail (JSON lines, group-committed fsync)
//	errors.go       stable error codes; classify maps every error to one
//
// The order on a forward request: authenticate and limit, idempotency, read and refuse
// raw card data, find the one token, take an upstream slot, read its record once,
// plan, start decrypting while the audit attempt record is made durable, fill the
// plan (consuming a CVV or wallet token), send once (restoring what was consumed if
// no byte left), scrub the answer, end the CVV of an accepted payment.
package proxy
