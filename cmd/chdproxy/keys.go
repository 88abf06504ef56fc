package main

import (
	"fmt"
	"io"

	"github.com/chdproxy/chdproxy/proxy"
)

// runKeys runs `keys generate --role ROLE`: the new key alone on stdout (so that
// `chdproxy keys generate --role secret > key` keeps it off the terminal), and on
// stderr the digest line for the configuration, which is all chdproxy keeps.
func runKeys(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys", "keys generate --role publishable|secret|admin")
	role := fs.String("role", "", "publishable (pk_, collect listener), secret (sk_, forward) or admin (ak_, admin)")
	if _, err := fs.parseVerb(args, 0, "generate"); err != nil {
		return err
	}
	key, digest, err := proxy.NewKey(proxy.Role(*role))
	if err != nil {
		return fs.failf("--role: want publishable, secret or admin")
	}
	fmt.Fprintln(stdout, key)
	fmt.Fprintf(stderr, `# The key above is shown once: hand it to the merchant; chdproxy stores only its digest.
# Add this line to the merchant's keys in the configuration:
      - {role: %s, digest: "%s"}
# or, through the environment: CHDPROXY_KEYS=MERCHANT_ID:%[1]s:%[2]s
`, *role, digest)
	return nil
}
