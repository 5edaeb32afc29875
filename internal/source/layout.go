package source

import (
	"strconv"
	"strings"
	"time"
)

// The date folders DMS puts CDC files in with DatePartitionEnabled: the
// DatePartitionSequence (YYYYMMDD, the default, YYYYMMDDHH, YYYYMM,
// MMYYYYDD, DDMMYYYY) written with the DatePartitionDelimiter between the
// parts: SLASH (the default) makes one folder per part (2024/08/14/), DASH,
// UNDERSCORE and NONE one folder (2024-08-14/, 2024_08_14/, 20240814/).
// Folders and file names are in the same time zone (DatePartitionTimezone,
// UTC by default). A table folder may hold several layouts at once: flat
// names from before partitioning was switched on, then one layout, then
// another.
//
// The listing uses them only to skip folders whose dates all lie outside
// the window it looks at; a folder that matches no layout is listed whole,
// so a layout this file does not know costs listing time, never a file.

// datePart is one part of a date folder.
type datePart byte

const (
	partY datePart = 'Y'
	partM datePart = 'M'
	partD datePart = 'D'
	partH datePart = 'H'
)

func (p datePart) width() int {
	if p == partY {
		return 4
	}
	return 2
}

// dateLayout is one DatePartitionSequence with one delimiter: the parts
// each folder segment holds, in order, and the separator between the parts
// of one segment.
type dateLayout struct {
	segs [][]datePart
	sep  string
}

// The sequences DMS offers, as parts.
var dateSequences = [][]datePart{
	{partY, partM, partD},        // YYYYMMDD
	{partY, partM, partD, partH}, // YYYYMMDDHH
	{partY, partM},               // YYYYMM
	{partM, partY, partD},        // MMYYYYDD
	{partD, partM, partY},        // DDMMYYYY
}

// dateLayouts are every sequence with every delimiter.
var dateLayouts = func() []dateLayout {
	var out []dateLayout
	for _, seq := range dateSequences {
		slash := dateLayout{}
		for _, p := range seq {
			slash.segs = append(slash.segs, []datePart{p})
		}
		out = append(out, slash)
		for _, sep := range []string{"-", "_", ""} {
			out = append(out, dateLayout{segs: [][]datePart{seq}, sep: sep})
		}
	}
	return out
}()

// dateFields are the parts of a date a folder path fixes; -1 is unknown.
type dateFields struct{ y, m, d, h int }

var noFields = dateFields{-1, -1, -1, -1}

// parseSegment reads one folder segment as parts joined by sep.
func parseSegment(seg string, parts []datePart, sep string, f dateFields) (dateFields, bool) {
	n := len(sep) * (len(parts) - 1)
	for _, p := range parts {
		n += p.width()
	}
	if len(seg) != n {
		return f, false
	}
	i := 0
	for k, p := range parts {
		if k > 0 {
			if seg[i:i+len(sep)] != sep {
				return f, false
			}
			i += len(sep)
		}
		s := seg[i : i+p.width()]
		i += p.width()
		for _, c := range s {
			if c < '0' || c > '9' {
				return f, false
			}
		}
		v, _ := strconv.Atoi(s)
		switch p {
		case partY:
			if v < 1970 || v > 2999 {
				return f, false
			}
			f.y = v
		case partM:
			if v < 1 || v > 12 {
				return f, false
			}
			f.m = v
		case partD:
			if v < 1 || v > 31 {
				return f, false
			}
			f.d = v
		case partH:
			if v > 23 {
				return f, false
			}
			f.h = v
		}
	}
	return f, true
}

// dateReading is one way to read a folder path as the date folders of a
// layout: the parts of the date it fixes.
type dateReading struct{ fields dateFields }

// readDateFolders returns every reading of the folder path segs as date
// folders of a DMS layout; none when it is not one.
func readDateFolders(segs []string) []dateReading {
	var out []dateReading
	for _, l := range dateLayouts {
		if len(segs) > len(l.segs) {
			continue
		}
		f, ok := noFields, true
		for i, s := range segs {
			if f, ok = parseSegment(s, l.segs[i], l.sep, f); !ok {
				break
			}
		}
		if ok {
			out = append(out, dateReading{fields: f})
		}
	}
	return out
}

// overlaps reports whether the fields allow a time in [lo, hi]: a day (or
// an hour, when the hour is fixed) they match intersects it.
func (f dateFields) overlaps(lo, hi time.Time) bool {
	first := time.Date(lo.Year(), lo.Month(), lo.Day(), 0, 0, 0, 0, time.UTC)
	days := int(hi.Sub(first).Hours()/24) + 1
	if days > maxWindowDays {
		return true
	}
	for i := range days {
		d := first.AddDate(0, 0, i)
		if (f.y >= 0 && f.y != d.Year()) || (f.m >= 0 && f.m != int(d.Month())) || (f.d >= 0 && f.d != d.Day()) {
			continue
		}
		start, end := d, d.AddDate(0, 0, 1)
		if f.h >= 0 {
			start = d.Add(time.Duration(f.h) * time.Hour)
			end = start.Add(time.Hour)
		}
		if start.Before(hi) && end.After(lo) {
			return true
		}
	}
	return false
}

// fullDate: the fields fix a day.
func (f dateFields) fullDate() bool { return f.y >= 0 && f.m >= 0 && f.d >= 0 }

// maxWindowDays bounds the days a window is checked day by day; a longer
// window (a table catching up after a long pause) lists every date folder.
const maxWindowDays = 4000

// folderVerdict is what a listing does with a folder.
type folderVerdict int

const (
	folderSkip    folderVerdict = iota // its dates all lie outside the window
	folderDescend                      // list it level by level
	folderWhole                        // list everything under it
)

// judgeFolder decides about the folder path segs (relative to the table
// folder) for a listing of the times lo..hi.
func judgeFolder(segs []string, lo, hi time.Time) folderVerdict {
	readings := readDateFolders(segs)
	if len(readings) == 0 {
		return folderWhole // not a date folder: nothing tells its files' names
	}
	whole, relevant := true, false
	for _, r := range readings {
		if !r.fields.overlaps(lo, hi) {
			continue
		}
		relevant = true
		if !r.fields.fullDate() {
			whole = false
		}
	}
	switch {
	case !relevant:
		return folderSkip
	case whole:
		return folderWhole
	}
	return folderDescend
}

// yearFirstFolder reports whether a folder name is only ever a date folder
// of one segment starting with the year (2024-08-14, 2024_08_14_15,
// 20240814, 202408): those sort by time, as CDC names do, so a listing
// skips the old ones as it skips old names.
func yearFirstFolder(name string) bool {
	readings := readDateFolders([]string{name})
	if len(readings) == 0 || len(name) <= 4 {
		return false
	}
	for _, l := range dateLayouts {
		if len(l.segs) == 1 && l.segs[0][0] != partY {
			if _, ok := parseSegment(name, l.segs[0], l.sep, noFields); ok {
				return false // also a DDMMYYYY or MMYYYYDD folder
			}
		}
	}
	return true
}

// DateFolder reports whether a folder name (one segment) can be the first
// date folder of a DMS layout: 2024, 08, 31, 2024-08-14, 31072024…
func DateFolder(name string) bool { return len(readDateFolders([]string{name})) > 0 }

// splitFolders splits a folder path "a/b/" into its segments.
func splitFolders(dir string) []string {
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		return nil
	}
	return strings.Split(dir, "/")
}
