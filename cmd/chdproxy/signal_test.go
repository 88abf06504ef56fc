package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testenv"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/redact"
)

// logrotate under serve or dev (both run reopenOnHUP): the audit file is moved,
// SIGHUP arrives, the process lives on (the signal no longer ends it) and writes the
// next records to a new file at the old path; the moved file keeps the earlier ones.
func TestSIGHUPReopensTheAuditFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	audit, closer, err := proxy.OpenAuditFile(path, "hash")
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	var logs testenv.Buffer
	stop := reopenOnHUP(redact.NewLogger(&logs, redact.New(redact.Rules{}), "hash"), audit, nil)
	defer stop()

	if err := audit.Write(proxy.AuditRecord{Event: "tokenize", RequestID: "req_before"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "audit file reopened"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no reopen within 5s of SIGHUP")
		}
	}
	if err := audit.Write(proxy.AuditRecord{Event: "tokenize", RequestID: "req_after"}); err != nil {
		t.Fatal(err)
	}
	moved, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !bytes.Contains(moved, []byte("req_before")) || bytes.Contains(moved, []byte("req_after")) {
		t.Errorf("the moved file: got %q, want the record before the move only", moved)
	}
	if !bytes.Contains(cur, []byte("req_after")) || bytes.Contains(cur, []byte("req_before")) {
		t.Errorf("the new file: got %q, want the record after the reopen only", cur)
	}
}
