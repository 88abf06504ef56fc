//go:build !production

package main

// The commands that run test-only parts: miniredis, the dev-only cipher and the
// SmartPayments sandbox (PCI DSS 6.5.6). A build with -tags production leaves this
// file, dev.go and sandbox.go out (production.go stands in), so its binary answers
// them as unknown commands and links none of their code.

// testOnlyUsage is their lines of the usage text.
const testOnlyUsage = `  dev [--state-dir DIR]        everything on loopback: miniredis, dev cipher, sandbox upstream
  sandbox [--addr ADDR]        the SmartPayments sandbox upstream alone
`

func testOnlyCommands() map[string]command {
	return map[string]command{"dev": withOSStreams(runDev), "sandbox": withOSStreams(runSandbox)}
}
