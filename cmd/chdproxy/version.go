package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is stamped by the image build: go build -ldflags "-X main.version=v1.2.3".
// Unstamped, the module version of the build info stands in ("(devel)" from a checkout).
var version string

// runVersion prints the version, the commit it was built from and the Go version.
func runVersion(args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("version", "version")
	if err := fs.parse(args, 0); err != nil {
		return err
	}
	fmt.Fprint(stdout, versionText())
	return nil
}

// versionText is four lines: "chdproxy VERSION", "commit REVISION[ (modified)]",
// "GOVERSION OS/ARCH" and "build tags TAGS" (production for the image: no dev or
// sandbox command in it; "none" for a default build). The commit comes from the VCS
// stamp of go build (absent under go run and go test, and when the source was not a
// git checkout).
func versionText() string {
	v, rev, modified, goVersion, tags := version, "unknown", "", runtime.Version(), "none"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision":
				rev = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				modified = " (modified)"
			case s.Key == "-tags" && s.Value != "":
				tags = s.Value
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	return fmt.Sprintf("chdproxy %s\ncommit %s%s\n%s %s/%s\nbuild tags %s\n", v, rev, modified, goVersion, runtime.GOOS, runtime.GOARCH, tags)
}
