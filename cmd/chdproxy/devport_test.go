//go:build !production

package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDevWithATakenPortWritesNoDevJSONAndAnnouncesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, logs bytes.Buffer
	err = dev(ctx, []string{"--state-dir", dir, "--collect-addr", "127.0.0.1:0", "--forward-addr", "127.0.0.1:0",
		"--admin-addr", taken.Addr().String(), "--sandbox-addr", "127.0.0.1:0"}, &out, &logs)
	if err == nil || !strings.Contains(err.Error(), "admin listener") {
		t.Fatalf("got %v, want the admin listener's bind error", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "dev.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dev.json: got %v, want no file: its keys never worked", err)
	}
	if out.Len() > 0 || strings.Contains(logs.String(), "is up") {
		t.Errorf("got walk-through %q and logs %q, want nothing announced", out.String(), logs.String())
	}
}
