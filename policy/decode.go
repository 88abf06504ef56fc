package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// decode parses a policy and checks it against the schema only: YAML syntax,
// unknown, duplicate and missing keys, value types, anchors and aliases.
// It never stops at the first problem, so that one run lists them all. The
// returned policy is never nil; with problems it is partial (usable by lint
// and Explain, not by the proxy). Defaults filled in: a route or passthrough
// without `method` gets POST; an inject entry without `kinds` gets its
// route's kinds.
func decode(b []byte) (*Policy, []Problem) {
	sum := sha256.Sum256(b)
	p := &Policy{
		Hash:      hex.EncodeToString(sum[:]),
		Upstreams: map[string]Upstream{},
		lines:     map[string]int{"": 1},
	}
	d := &decoder{p: p}
	if len(b) > MaxFileSize {
		d.fail(0, "", "policy is larger than %d bytes", MaxFileSize)
		return d.finish()
	}
	root := d.parse(b)
	if root == nil {
		d.p.broken = append(d.p.broken, "")
		return d.finish()
	}
	d.anchors(root)
	d.object(root, "", []field{
		{"version", true, func(n *yaml.Node, path string) {
			if v, ok := d.integer(n, path); ok {
				p.Version = v
			}
		}},
		{"upstreams", true, d.upstreams},
		{"routes", true, d.routes},
		{"passthrough", false, d.passthroughs},
		{"tokens", true, d.tokens},
		{"logging", true, d.logging},
		{"redaction", false, d.redaction},
	})
	return d.finish()
}

type decoder struct {
	p        *Policy
	problems []Problem
}

type field struct {
	name     string
	required bool
	decode   func(n *yaml.Node, path string)
}

// add records a problem that leaves the value usable (unknown or duplicate
// key, anchor): lint still checks the value.
func (d *decoder) add(line int, path, format string, args ...any) {
	d.problems = append(d.problems, Problem{Line: line, Path: path, Message: fmt.Sprintf(format, args...)})
}

// fail records a problem that leaves the value at path unknown: lint stays
// quiet about path and everything below it.
func (d *decoder) fail(line int, path, format string, args ...any) {
	d.add(line, path, format, args...)
	d.p.broken = append(d.p.broken, path)
}

func (d *decoder) finish() (*Policy, []Problem) {
	sortProblems(d.problems)
	return d.p, d.problems
}

var yamlLine = regexp.MustCompile(`line (\d+): `)

// parse returns the root node of the only document, or nil.
func (d *decoder) parse(b []byte) (root *yaml.Node) {
	defer func() {
		// yaml.v3 is not ours; a panic on hostile input must not take the
		// process down with it.
		if r := recover(); r != nil {
			d.problems = append(d.problems, Problem{Message: "YAML parser failed on this input"})
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.add(0, "", "policy is empty")
		} else {
			d.yamlError(err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.yamlError(err)
	default:
		d.add(next.Line, "", "only one YAML document is allowed")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		d.add(doc.Line, "", "policy is empty")
		return nil
	}
	root = doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		d.add(root.Line, "", "policy is empty")
		return nil
	}
	return root
}

// yamlParserErrors are the messages of yaml.v3's parser (as opposed to its
// scanner). It reports their line 0-based, and leaves it out for the first
// line; scanner errors come 1-based.
var yamlParserErrors = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

func (d *decoder) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatchIndex(msg); m != nil && m[0] == 0 {
		line, _ = strconv.Atoi(msg[m[2]:m[3]])
		msg = msg[m[1]:]
	}
	if yamlParserErrors[msg] {
		line++
	}
	d.add(line, "", "YAML syntax: %s", msg)
}

// anchors reports every anchor: aliases make a policy harder to review, and
// are refused wherever they are used.
func (d *decoder) anchors(n *yaml.Node) {
	if n == nil {
		return
	}
	if n.Anchor != "" {
		d.add(n.Line, "", "YAML anchors are not allowed (&%s)", n.Anchor)
	}
	if n.Kind == yaml.AliasNode {
		return
	}
	for _, c := range n.Content {
		d.anchors(c)
	}
}

func child(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func item(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch t := n.ShortTag(); t {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!bool":
		return "a boolean"
	case "!!float":
		return "a number"
	case "!!null":
		return "nothing (null)"
	case "!!timestamp":
		return "a timestamp"
	case "!!binary":
		return "binary data"
	default:
		return "a value tagged " + t
	}
}

// is checks n's node kind; want describes it for the message.
func (d *decoder) is(n *yaml.Node, path string, kind yaml.Kind, want string) bool {
	if n.Kind == yaml.AliasNode {
		d.fail(n.Line, path, "YAML aliases are not allowed (*%s)", n.Value)
		return false
	}
	if n.Kind != kind {
		if path == "" {
			d.fail(n.Line, path, "the policy must be %s, got %s", want, describe(n))
			return false
		}
		d.fail(n.Line, path, "must be %s, got %s", want, describe(n))
		return false
	}
	return true
}

// pairs walks a mapping's entries, reporting keys that are not plain strings
// and duplicate keys (the first occurrence wins).
func (d *decoder) pairs(n *yaml.Node, path string, fn func(key string, k, v *yaml.Node, kpath string)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			d.add(k.Line, path, "YAML merge keys (<<) are not allowed")
			continue
		}
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			d.add(k.Line, path, "keys must be plain strings, got %s", describe(k))
			continue
		}
		kp := child(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.add(k.Line, kp, "duplicate key %q (first at line %d)", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		d.p.lines[kp] = k.Line
		fn(k.Value, k, v, kp)
	}
}

// object decodes a mapping with known keys and returns the keys present.
func (d *decoder) object(n *yaml.Node, path string, fields []field) map[string]bool {
	present := map[string]bool{}
	if !d.is(n, path, yaml.MappingNode, "a mapping") {
		return present
	}
	d.pairs(n, path, func(key string, k, v *yaml.Node, kp string) {
		for _, f := range fields {
			if f.name == key {
				present[key] = true
				f.decode(v, kp)
				return
			}
		}
		d.add(k.Line, kp, "unknown key %q%s", key, suggest(key, fields))
	})
	for _, f := range fields {
		if f.required && !present[f.name] {
			d.fail(n.Line, child(path, f.name), "missing required key %q", f.name)
		}
	}
	return present
}

// suggest returns ` (did you mean "x"?)` for a key close to a known one.
func suggest(key string, fields []field) string {
	best, bestDist := "", 3
	for _, f := range fields {
		if dist := editDistance(strings.ToLower(key), f.name); dist < bestDist {
			best, bestDist = f.name, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (d *decoder) list(n *yaml.Node, path string, fn func(n *yaml.Node, ipath string)) {
	if !d.is(n, path, yaml.SequenceNode, "a list") {
		return
	}
	for i, c := range n.Content {
		ip := item(path, i)
		d.p.lines[ip] = c.Line
		fn(c, ip)
	}
}

func (d *decoder) scalar(n *yaml.Node, path, tag, want string) bool {
	if !d.is(n, path, yaml.ScalarNode, want) {
		return false
	}
	if n.ShortTag() != tag {
		d.fail(n.Line, path, "must be %s, got %s", want, describe(n))
		return false
	}
	return true
}

func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	if !d.scalar(n, path, "!!str", "a string") {
		return "", false
	}
	return n.Value, true
}

func (d *decoder) integer(n *yaml.Node, path string) (int, bool) {
	if !d.scalar(n, path, "!!int", "an integer") {
		return 0, false
	}
	var v int
	if err := n.Decode(&v); err != nil {
		d.fail(n.Line, path, "integer out of range")
		return 0, false
	}
	return v, true
}

func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	if !d.scalar(n, path, "!!bool", "a boolean (true or false)") {
		return false, false
	}
	var v bool
	if err := n.Decode(&v); err != nil {
		d.fail(n.Line, path, "must be a boolean (true or false)")
		return false, false
	}
	return v, true
}

func (d *decoder) duration(n *yaml.Node, path string) (time.Duration, bool) {
	if !d.scalar(n, path, "!!str", `a duration such as "10m" or "24h"`) {
		return 0, false
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		d.fail(n.Line, path, `must be a duration such as "10m" or "24h", got %q`, n.Value)
		return 0, false
	}
	return v, true
}

func (d *decoder) strField(dst *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if s, ok := d.str(n, path); ok {
			*dst = s
		}
	}
}

func (d *decoder) boolField(dst *bool) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if v, ok := d.boolean(n, path); ok {
			*dst = v
		}
	}
}

func (d *decoder) durationField(dst *time.Duration) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if v, ok := d.duration(n, path); ok {
			*dst = v
		}
	}
}

// stringsField decodes a list of strings (or of a string type, such as
// token.Kind). A bad item is kept as "" so indexes match the file. It is not
// a method because methods cannot have type parameters.
func stringsField[S ~string](d *decoder, dst *[]S) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		out := []S{}
		d.list(n, path, func(c *yaml.Node, ip string) {
			s, _ := d.str(c, ip)
			out = append(out, S(s))
		})
		*dst = out
	}
}

func (d *decoder) upstreams(n *yaml.Node, path string) {
	if !d.is(n, path, yaml.MappingNode, "a mapping of upstream names to upstreams") {
		return
	}
	d.pairs(n, path, func(name string, _, v *yaml.Node, up string) {
		u := Upstream{Name: name}
		d.object(v, up, []field{
			{"base_url", true, d.strField(&u.BaseURL)},
			{"card_data", false, d.boolField(&u.CardData)},
		})
		d.p.Upstreams[name] = u
	})
}

func (d *decoder) routes(n *yaml.Node, path string) {
	d.list(n, path, func(c *yaml.Node, rp string) {
		var r Route
		var kindsGiven []bool
		present := d.object(c, rp, []field{
			{"name", true, d.strField(&r.Name)},
			{"method", false, d.strField(&r.Method)},
			{"path", true, d.strField(&r.Path)},
			{"upstream", true, d.strField(&r.Upstream)},
			{"payment", false, d.boolField(&r.Payment)},
			{"kinds", true, stringsField(d, &r.AllowedKinds)},
			{"payment_method_field", false, d.strField(&r.PaymentMethodField)},
			{"acknowledge", false, stringsField(d, &r.Acknowledge)},
			{"inject", true, func(n *yaml.Node, path string) {
				d.list(n, path, func(c *yaml.Node, ip string) {
					in, given := d.injection(c, ip)
					r.Inject = append(r.Inject, in)
					kindsGiven = append(kindsGiven, given)
				})
			}},
		})
		if c.Kind == yaml.MappingNode && !present["method"] {
			r.Method = "POST"
		}
		for i := range r.Inject {
			if !kindsGiven[i] {
				r.Inject[i].Kinds = slices.Clone(r.AllowedKinds)
				if kp := child(rp, "kinds"); !present["kinds"] || d.p.quiet(kp) {
					// Already reported as the route's missing kinds.
					d.p.broken = append(d.p.broken, child(item(child(rp, "inject"), i), "kinds"))
				}
			}
		}
		d.p.Routes = append(d.p.Routes, r)
	})
}

// injection decodes one inject entry; kindsGiven says whether it had `kinds`.
func (d *decoder) injection(n *yaml.Node, ip string) (in Injection, kindsGiven bool) {
	present := d.object(n, ip, []field{
		{"field", true, d.strField(&in.Field)},
		{"attribute", true, d.strField(&in.Attribute)},
		{"kinds", false, stringsField(d, &in.Kinds)},
	})
	return in, present["kinds"]
}

func (d *decoder) passthroughs(n *yaml.Node, path string) {
	d.list(n, path, func(c *yaml.Node, pp string) {
		var t Passthrough
		present := d.object(c, pp, []field{
			{"name", true, d.strField(&t.Name)},
			{"method", false, d.strField(&t.Method)},
			{"path", true, d.strField(&t.Path)},
			{"upstream", true, d.strField(&t.Upstream)},
		})
		if c.Kind == yaml.MappingNode && !present["method"] {
			t.Method = "POST"
		}
		d.p.Passthrough = append(d.p.Passthrough, t)
	})
}

func (d *decoder) tokens(n *yaml.Node, path string) {
	t := &d.p.Tokens
	d.object(n, path, []field{
		{"card_ttl", true, d.durationField(&t.Card)},
		{"cvv_ttl", true, d.durationField(&t.CVV)},
		{"wallet_ttl", true, d.durationField(&t.Wallet)},
	})
}

func (d *decoder) logging(n *yaml.Node, path string) {
	d.object(n, path, []field{
		{"pan_mask", true, d.strField(&d.p.Logging.PANMask)},
	})
}

func (d *decoder) redaction(n *yaml.Node, path string) {
	r := &d.p.Redaction
	d.object(n, path, []field{
		{"fields", false, stringsField(d, &r.Fields)},
		{"headers", false, stringsField(d, &r.Headers)},
	})
}
