package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Progress hears how far a long run is; a nil Progress hears nothing.
type Progress interface {
	// Step reports done of total units (files, partitions, rows) of a
	// phase of a table's run.
	Step(table, phase string, done, total int)
	// Done ends the table's progress line.
	Done(table string)
}

// termProgress draws one line on a terminal, redrawn at most ten times a
// second: the phase of the table that reported last.
type termProgress struct {
	mu   sync.Mutex
	w    io.Writer
	last time.Time
	now  func() time.Time
	line bool // a line is drawn and not ended
}

func newTermProgress(w io.Writer) *termProgress { return &termProgress{w: w, now: time.Now} }

func (p *termProgress) Step(table, phase string, done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.now(); done < total && t.Sub(p.last) < 100*time.Millisecond {
		return
	} else {
		p.last = t
	}
	const width = 30
	filled := 0
	if total > 0 {
		filled = min(width, done*width/total)
	}
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = '.'
		if i < filled {
			bar[i] = '#'
		}
	}
	fmt.Fprintf(p.w, "\r\033[K%s: %s [%s] %d/%d", table, phase, bar, done, total)
	p.line = true
}

func (p *termProgress) Done(string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.line {
		fmt.Fprint(p.w, "\r\033[K")
		p.line = false
	}
}

// progressOn is a progress bar on w when w is a terminal, else nil.
func progressOn(w io.Writer) Progress {
	if !isTerminal(w) {
		return nil
	}
	return newTermProgress(w)
}
