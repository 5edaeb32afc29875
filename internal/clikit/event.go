package clikit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// EventForm is the JSON form of a command an invocation (AWS Lambda) sends:
// the command when the event names none, the flags each command takes from
// an event, and the flags naming locations, which only the function's
// environment sets.
type EventForm struct {
	Default   string
	Fields    map[string][]string
	Locations []string
	// FlagsOf lists a command's flags; false when the build has no such
	// command.
	FlagsOf func(command string) ([]string, bool)
	// Build names the build in messages.
	Build string
}

// Args turns the event, a JSON object of a command and its settings,
// into the command and its command-line flags: {"table": "test_db.users",
// "max-files": "10"} is run --table=test_db.users --max-files=10, and
// {"command": "maintain", "table": "test_db.users", "only": "manifests"}
// is maintain --table=test_db.users --only=manifests. Names are the flags'
// names; an underscore may stand for a dash (max_files). Values are
// strings; numbers and booleans are taken as written. A field the command
// does not take from an event (eventFields), a repeated field, or a value
// of another kind is an error naming the field; an event's source must be
// s3:// (the function has no local folders to read). An empty event or
// null is the default command with no flag.
func (f EventForm) Args(event []byte) (command string, args []string, err error) {
	command = f.Default
	event = bytes.TrimSpace(event)
	if len(event) == 0 || string(event) == "null" {
		return command, nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", nil, fmt.Errorf("the event is not a JSON object: want {\"table\": \"NS.NAME\", \"source\": \"s3://…\", \"key\": \"COL\", …}")
	}
	type field struct{ name, given, value string }
	var fields []field
	seen := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", nil, fmt.Errorf("the event is not valid JSON: %w", err)
		}
		given, ok := tok.(string)
		if !ok {
			return "", nil, fmt.Errorf("the event is not valid JSON: %v where a field name belongs", tok)
		}
		name := strings.ReplaceAll(given, "_", "-")
		if prev, ok := seen[name]; ok {
			return "", nil, fmt.Errorf("event field %q repeats %q: give each setting once", given, prev)
		}
		seen[name] = given
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", nil, fmt.Errorf("event field %q: %w", given, err)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", nil, fmt.Errorf("event field %q: %w", given, err)
		}
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case bool:
			s = fmt.Sprint(v)
		case float64:
			s = string(bytes.TrimSpace(raw)) // as written: 10, not 1e+01
		default:
			return "", nil, fmt.Errorf("event field %q: %s is not a string: give the setting's value as a string, e.g. \"%s\": \"...\"", given, bytes.TrimSpace(raw), given)
		}
		if name == "command" {
			command = s
			continue
		}
		fields = append(fields, field{name, given, s})
	}
	if _, err := dec.Token(); err != nil {
		return "", nil, fmt.Errorf("the event is not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", nil, errors.New("the event has data after its JSON object: send one object")
	}
	allowed, ok := f.Fields[command]
	if !ok {
		return "", nil, fmt.Errorf("event field \"command\": %q is not a command the function runs: use %s", command, strings.Join(slices.Sorted(maps.Keys(f.Fields)), ", "))
	}
	flags, ok := f.FlagsOf(command)
	if !ok {
		return "", nil, fmt.Errorf("event field \"command\": %q is not a command of this icemerge build (%s): deploy a build that has it", command, f.Build)
	}
	usable := []string{"command"}
	for _, name := range allowed {
		if slices.Contains(flags, name) {
			usable = append(usable, name)
		}
	}
	for _, fl := range fields {
		switch {
		case slices.Contains(allowed, fl.name) && slices.Contains(flags, fl.name):
		case slices.Contains(f.Locations, fl.name):
			return "", nil, fmt.Errorf("event field %q is refused: locations are fixed by the function's configuration (its %s variable), never by the event", fl.given, EnvName(fl.name))
		case fl.name == "report":
			return "", nil, fmt.Errorf("event field %q is refused: the report is the invocation's answer", fl.given)
		case slices.Contains(flags, fl.name):
			return "", nil, fmt.Errorf("event field %q is refused: it is a setting of the function, in its environment (%s); an event gives %s",
				fl.given, EnvName(fl.name), strings.Join(usable, ", "))
		default:
			return "", nil, fmt.Errorf("event field %q is not a setting of icemerge %s: an event gives %s", fl.given, command, strings.Join(usable, ", "))
		}
		if fl.name == "source" && !strings.HasPrefix(fl.value, "s3://") {
			return "", nil, fmt.Errorf("event field %q: the function reads DMS folders on S3 only: give s3://BUCKET/PREFIX/", fl.given)
		}
		args = append(args, "--"+fl.name+"="+fl.value)
	}
	return command, args, nil
}

// EnvName is the environment variable of a flag: ICEMERGE_CATALOG_URI.
func EnvName(flag string) string {
	return "ICEMERGE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// LambdaEnv is the function's environment, where --memory defaults to
// three quarters of the function's memory (AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
// MB): the rest is the runtime's and the process's besides the Go heap.
// ICEMERGE_MEMORY set on the function wins.
func LambdaEnv(env func(string) (string, bool)) func(string) (string, bool) {
	return func(key string) (string, bool) {
		v, ok := env(key)
		if ok || key != "ICEMERGE_MEMORY" {
			return v, ok
		}
		s, _ := env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
		mb, err := strconv.Atoi(s)
		if err != nil || mb <= 0 {
			return "", false
		}
		return strconv.Itoa(mb*3/4) + "MiB", true
	}
}
