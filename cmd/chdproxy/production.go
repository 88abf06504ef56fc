//go:build production

package main

import "github.com/sirupsen/logrus"

// A production build (-tags production, as the image is built) has no test-only
// commands: see testonly.go.

const testOnlyUsage = ""

func testOnlyCommands() map[string]command { return nil }

// startCPUProfileListener: a production build has no profile listener and
// ignores CHDPROXY_PPROF_ADDR (pprof.go is left out).
func startCPUProfileListener(logrus.FieldLogger) (stop func(), err error) { return func() {}, nil }
