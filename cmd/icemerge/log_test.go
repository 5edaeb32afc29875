package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// Logs are JSON lines unless they go to a terminal or text is asked for:
// CloudWatch and log collectors parse them.
func TestLogFormat(t *testing.T) {
	for _, c := range []struct {
		format string
		json   bool
	}{{"auto", true}, {"json", true}, {"text", false}} {
		var b bytes.Buffer
		globals{LogLevel: "info", LogFormat: c.format}.logger(&b).Info("committed", "snapshot", 7)
		line := strings.TrimSpace(b.String())
		var m map[string]any
		isJSON := json.Unmarshal([]byte(line), &m) == nil
		if isJSON != c.json || !strings.Contains(line, "snapshot") {
			t.Errorf("--log-format %s to a buffer: %q; want JSON %v", c.format, line, c.json)
		}
	}
}

// --log-format json is JSON on a terminal too.
func TestJSONLogsAnywhere(t *testing.T) {
	if !(globals{LogFormat: "json"}).json(os.Stderr) {
		t.Error("--log-format json is not JSON on stderr")
	}
}
