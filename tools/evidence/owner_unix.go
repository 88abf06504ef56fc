//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
)

// owner is a file's uid:gid.
func owner(fi os.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d", st.Uid, st.Gid)
	}
	return "?"
}
