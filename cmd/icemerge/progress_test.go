package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// The bar redraws at most ten times a second, always shows the end of a
// phase, and Done clears it.
func TestTermProgress(t *testing.T) {
	var b bytes.Buffer
	now := time.Unix(0, 0)
	p := newTermProgress(&b)
	p.now = func() time.Time { return now }
	p.Step("db.users", "reading files", 1, 4)
	p.Step("db.users", "reading files", 2, 4) // within 100 ms: not drawn
	now = now.Add(200 * time.Millisecond)
	p.Step("db.users", "reading files", 3, 4)
	p.Step("db.users", "reading files", 4, 4) // the end: drawn at once
	got := strings.Split(b.String(), "\r\033[K")
	want := []string{"",
		"db.users: reading files [#######.......................] 1/4",
		"db.users: reading files [######################........] 3/4",
		"db.users: reading files [##############################] 4/4"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("drawn %q\nwant  %q", got, want)
	}
	b.Reset()
	p.Done("db.users")
	if b.String() != "\r\033[K" {
		t.Errorf("Done wrote %q, want the line cleared", b.String())
	}
	if progressOn(&b) != nil {
		t.Error("a progress bar on a buffer, not a terminal")
	}
}
