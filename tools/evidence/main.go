// Command evidence writes a dated evidence bundle for a PCI DSS assessor:
// evidence/<UTC date-time>/ with the results of the redaction, hostile (on a real
// Vault and redis-server) and leak test suites, the policy report and its hash, a
// CycloneDX SBOM and `go version -m` of the production binary, the Vault policies,
// the image's contents, the commit, and index.md, the page an assessor reads first.
//
//	go run ./tools/evidence -out evidence      (make evidence)
//
// It is not part of the chdproxy binary. It exits 1 when a suite failed, after the
// bundle is written: the failure is evidence too.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

func main() {
	out := flag.String("out", "evidence", "folder of the bundles: each run writes OUT/<UTC date-time>/")
	policyFile := flag.String("policy", "deploy/policy.yaml", "the policy the report is made of")
	image := flag.String("image", "chdproxy:latest", "the image whose contents are listed (when built)")
	flag.Parse()
	started := time.Now().UTC()
	b := &bundle{
		dir: filepath.Join(*out, started.Format("20060102T150405Z")), started: started,
		policy: *policyFile, image: *image,
	}
	if err := b.build(); err != nil {
		fmt.Fprintln(os.Stderr, "evidence:", err)
		os.Exit(1)
	}
	fmt.Printf("evidence: %s/index.md (%s, %s)\n", b.dir, b.verdict(), time.Since(started).Round(time.Second))
	if b.verdict() != "PASS" {
		os.Exit(1)
	}
}
