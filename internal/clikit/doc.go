// Package clikit holds the parts of icemerge's command line that are not
// its grammar: help text and shell completion made from kong's model, the
// progress display (bars on a terminal, progress log lines elsewhere), the
// JSON form of a Lambda event, and process settings (logger, GC, profiles).
// cmd/icemerge declares the commands and maps outcomes to exit codes; the
// run itself is package icemerge's. Nothing here knows the protocol.
package clikit
