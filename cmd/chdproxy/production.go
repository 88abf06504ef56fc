//go:build production

package main

// A production build (-tags production, as the image is built) has no test-only
// commands: see testonly.go.

const testOnlyUsage = ""

func testOnlyCommands() map[string]command { return nil }
