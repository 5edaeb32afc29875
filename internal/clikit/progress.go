package clikit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/icemerge/icemerge"
	"github.com/icemerge/icemerge/internal/source"
)

// What a person sees of a long command. On a terminal with text logs: one
// bar per table (mpb), with the phase, its rate and an ETA, and the bytes
// read of the files being read, log lines printed above the bars. Anywhere
// else (a pipe, a file, JSON logs): a progress log line at least every
// LogEvery, so a long run is never silent.

// LogEvery is how often a run's progress is logged when no bar is
// drawn.
var LogEvery = 10 * time.Second

// Progress is icemerge.Progress plus what the command line adds: the bytes
// read of the source files, and an end before results are printed.
type Progress interface {
	icemerge.Progress
	// Source counts the bytes read from the table's source folder.
	Source(table string, s icemerge.Source) icemerge.Source
	// Close ends the display: bars are drawn for the last time, the log
	// goes straight to stderr again.
	Close()
}

// NewProgress chooses the display: bars when stderr is a terminal and logs
// are text, else log lines. logs is the logger's output, which the bars
// take over while they are drawn.
func NewProgress(stderr io.Writer, term, jsonLogs bool, logs *SwitchWriter, log *slog.Logger) Progress {
	if term && !jsonLogs {
		return newBarProgress(stderr, logs, nil)
	}
	return newLogProgress(log, LogEvery)
}

// tracker keeps each table's progress: the phase and its counts, and the
// source files being read.
type tracker struct {
	mu     sync.Mutex
	now    func() time.Time
	tables map[string]*tableState
	order  []string
	onNew  func(table string) // a table's first report
}

type tableState struct {
	phase       string
	done, total int
	phaseAt     time.Time
	started     time.Time
	ended       time.Time
	bytes       int64 // read from the source, in all
	files       []*fileCount
}

// fileCount is one source file being read.
type fileCount struct {
	t          *tracker
	table, key string
	size, read int64 // size 0: not known yet
}

func newTracker(now func() time.Time) *tracker {
	return &tracker{now: now, tables: map[string]*tableState{}}
}

// state returns the table's state, making it on its first report.
// Called with mu held.
func (t *tracker) state(table string) (*tableState, bool) {
	s, ok := t.tables[table]
	if !ok {
		now := t.now()
		s = &tableState{started: now, phaseAt: now}
		t.tables[table] = s
		t.order = append(t.order, table)
	}
	return s, !ok
}

func (t *tracker) Step(table, phase string, done, total int) {
	t.mu.Lock()
	s, isNew := t.state(table)
	if s.phase != phase {
		s.phase, s.phaseAt = phase, t.now()
	}
	s.done, s.total = done, total
	t.mu.Unlock()
	if isNew && t.onNew != nil {
		t.onNew(table)
	}
}

func (t *tracker) Done(table string) {
	t.mu.Lock()
	s, _ := t.state(table)
	s.ended = t.now()
	t.mu.Unlock()
}

// open starts counting one source file of the table.
func (t *tracker) open(table, key string) *fileCount {
	t.mu.Lock()
	s, isNew := t.state(table)
	f := &fileCount{t: t, table: table, key: key}
	s.files = append(s.files, f)
	t.mu.Unlock()
	if isNew && t.onNew != nil {
		t.onNew(table)
	}
	return f
}

func (f *fileCount) setSize(n int64) {
	f.t.mu.Lock()
	f.size = n
	f.t.mu.Unlock()
}

func (f *fileCount) add(n int) {
	f.t.mu.Lock()
	f.read += int64(n)
	f.t.tables[f.table].bytes += int64(n)
	f.t.mu.Unlock()
}

func (f *fileCount) close() {
	f.t.mu.Lock()
	s := f.t.tables[f.table]
	s.files = slices.DeleteFunc(s.files, func(g *fileCount) bool { return g == f })
	f.t.mu.Unlock()
}

// view is what is shown of a table at one moment.
type view struct {
	table    string
	phase    string
	done     int
	total    int
	unit     string
	fraction float64 // of the phase, with the files being read
	rate     float64 // units a second in this phase
	eta      time.Duration
	etaKnown bool
	bytes    int64
	bps      float64 // bytes read a second since the table started
	reading  []string
	ended    bool
	elapsed  time.Duration
}

// view is the table's state now.
func (t *tracker) view(table string) view {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.tables[table]
	now := t.now()
	v := view{table: table, phase: s.phase, done: s.done, total: s.total, bytes: s.bytes, ended: !s.ended.IsZero()}
	v.elapsed = now.Sub(s.started)
	if v.ended {
		v.elapsed = s.ended.Sub(s.started)
	}
	if i := strings.LastIndexByte(s.phase, ' '); i >= 0 {
		v.unit = s.phase[i+1:]
	}
	if sec := v.elapsed.Seconds(); sec > 0 {
		v.bps = float64(s.bytes) / sec
	}
	partial := 0.0
	for _, f := range s.files {
		if f.size > 0 {
			partial += min(1, float64(f.read)/float64(f.size))
			v.reading = append(v.reading, fmt.Sprintf("%s %s/%s", f.key, mib(f.read), mib(f.size)))
		} else {
			v.reading = append(v.reading, fmt.Sprintf("%s %s", f.key, mib(f.read)))
		}
	}
	if s.total > 0 {
		if !strings.HasPrefix(s.phase, "reading") {
			partial = 0
		}
		v.fraction = min(1, (float64(s.done)+partial)/float64(s.total))
		inPhase := now.Sub(s.phaseAt).Seconds()
		if inPhase > 0 {
			v.rate = float64(s.done) / inPhase
		}
		if v.fraction > 0 && inPhase > 0 {
			v.eta = time.Duration(inPhase * (1 - v.fraction) / v.fraction * float64(time.Second))
			v.etaKnown = true
		}
	}
	return v
}

// text is the view in one line, after the table's name.
func (v view) text() string {
	if v.ended {
		return fmt.Sprintf("done in %s (%s read)", v.elapsed.Round(100*time.Millisecond), mib(v.bytes))
	}
	var parts []string
	switch {
	case v.phase != "":
		parts = append(parts, fmt.Sprintf("%s %s/%s", v.phase, count3(v.done), count3(v.total)))
		if v.rate > 0 {
			parts = append(parts, fmt.Sprintf("%s %s/s", rateText(v.rate), v.unit))
		}
		if v.etaKnown && v.done < v.total {
			parts = append(parts, "ETA "+v.eta.Round(time.Second).String())
		}
	case len(v.reading) > 0:
		parts = append(parts, "reading")
	default:
		parts = append(parts, "starting")
	}
	if strings.HasPrefix(v.phase, "reading") || v.phase == "" {
		if len(v.reading) > 0 {
			parts = append(parts, strings.Join(v.reading, ", "))
		}
		if v.bytes > 0 {
			parts = append(parts, fmt.Sprintf("%s read, %s/s", mib(v.bytes), mib(int64(v.bps))))
		}
	}
	return strings.Join(parts, " · ")
}

// mib is a byte count for people.
func mib(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// count3 writes a count with thousands separators: 1,234,567.
func count3(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// rateText is a rate for people: 12,345 or 3.4.
func rateText(r float64) string {
	if r >= 100 {
		return count3(int(r))
	}
	return fmt.Sprintf("%.1f", r)
}

// sourceCounter counts the bytes read from a table's source files: from a
// local file as it is read, from S3 as the response body arrives
// (CountingTransport), so the first large file shows its progress.
type sourceCounter struct {
	icemerge.Source
	t     *tracker
	table string
}

func (s *sourceCounter) Open(ctx context.Context, key string, pin source.Version) (source.Reader, error) {
	fc := s.t.open(s.table, key)
	r, err := s.Source.Open(context.WithValue(ctx, fileCountKey{}, fc), key, pin)
	if err != nil {
		fc.close()
		return nil, err
	}
	if v := r.Version(); v.SHA256 != "" {
		// A local file, read whole (and hashed) by Open: all of it is read.
		fc.setSize(v.Size)
		fc.add(int(v.Size))
	}
	return &countedReader{Reader: r, fc: fc}, nil // S3: counted as it arrived
}

// countedReader ends the file's count when closed.
type countedReader struct {
	source.Reader
	fc   *fileCount
	once sync.Once
}

func (r *countedReader) Close() error {
	r.once.Do(r.fc.close)
	return r.Reader.Close()
}

// fileCountKey carries a source file's count to the HTTP transport.
type fileCountKey struct{}

// CountingTransport counts the response bodies of requests made for a
// counted source file.
type CountingTransport struct{ http.RoundTripper }

func (t CountingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.RoundTripper.RoundTrip(req)
	fc, ok := req.Context().Value(fileCountKey{}).(*fileCount)
	if err != nil || !ok || resp.Body == nil || resp.StatusCode >= 300 {
		return resp, err
	}
	if resp.ContentLength > 0 {
		fc.setSize(resp.ContentLength)
	}
	resp.Body = &countedBody{ReadCloser: resp.Body, fc: fc}
	return resp, nil
}

type countedBody struct {
	io.ReadCloser
	fc *fileCount
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.fc.add(n)
	return n, err
}

// barProgress draws one bar per table with mpb.
type barProgress struct {
	*tracker
	p      *mpb.Progress
	logs   *SwitchWriter
	mu     sync.Mutex
	bars   map[string]*mpb.Bar
	stop   chan struct{}
	wg     sync.WaitGroup
	closed bool
}

// barScale is a bar's total: a phase's fraction in thousandths.
const barScale = 1000

// newBarProgress draws on w (console, when not nil, stands for the
// terminal in tests).
func newBarProgress(w io.Writer, logs *SwitchWriter, console mpb.ConsoleWriter) *barProgress {
	opts := []mpb.ContainerOption{mpb.WithOutput(w), mpb.WithRefreshRate(150 * time.Millisecond), mpb.WithWidth(100)}
	if console != nil {
		opts = append(opts, mpb.WithConsoleWriter(console), mpb.WithAutoRefresh())
	}
	b := &barProgress{tracker: newTracker(time.Now), p: mpb.New(opts...), logs: logs, bars: map[string]*mpb.Bar{}, stop: make(chan struct{})}
	b.onNew = b.addBar
	if logs != nil {
		logs.set(b.p) // log lines print above the bars
	}
	b.wg.Add(1)
	go b.refresh()
	return b
}

func (b *barProgress) addBar(table string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.bars[table] = b.p.AddBar(barScale,
		mpb.PrependDecorators(decor.Name(table, decor.WC{C: decor.DindentRight | decor.DextraSpace | decor.DSyncWidth})),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return b.view(table).text() })),
		mpb.BarWidth(24))
}

// refresh moves the bars to their tables' fractions, ten times a second.
func (b *barProgress) refresh() {
	defer b.wg.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
			b.set(false)
		}
	}
}

// set moves every bar; final completes those of ended tables.
func (b *barProgress) set(final bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for table, bar := range b.bars {
		v := b.view(table)
		switch {
		case v.ended || final:
			bar.SetCurrent(barScale)
		default:
			bar.SetCurrent(min(barScale-1, int64(v.fraction*barScale)))
		}
	}
}

func (b *barProgress) Source(table string, s icemerge.Source) icemerge.Source {
	return &sourceCounter{Source: s, t: b.tracker, table: table}
}

func (b *barProgress) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	close(b.stop)
	b.wg.Wait()
	b.set(true)
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.p.Wait()
	if b.logs != nil {
		b.logs.reset()
	}
}

// logProgress logs each running table's progress every interval.
type logProgress struct {
	*tracker
	log  *slog.Logger
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func newLogProgress(log *slog.Logger, every time.Duration) *logProgress {
	l := &logProgress{tracker: newTracker(time.Now), log: log, stop: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
				l.logAll()
			}
		}
	}()
	return l
}

// logAll logs one line for each table still running.
func (l *logProgress) logAll() {
	l.mu.Lock()
	tables := slices.Clone(l.order)
	l.mu.Unlock()
	for _, table := range tables {
		v := l.view(table)
		if v.ended {
			continue
		}
		attrs := []any{"table", table, "phase", v.phase, "done", v.done, "total", v.total, "elapsed", v.elapsed.Round(time.Second).String()}
		if v.rate > 0 {
			attrs = append(attrs, "per_second", int64(v.rate))
		}
		if v.etaKnown && v.done < v.total {
			attrs = append(attrs, "eta", v.eta.Round(time.Second).String())
		}
		if v.bytes > 0 {
			attrs = append(attrs, "bytes_read", v.bytes)
		}
		if len(v.reading) > 0 {
			attrs = append(attrs, "reading", strings.Join(v.reading, ", "))
		}
		l.log.Info("progress", attrs...)
	}
}

func (l *logProgress) Source(table string, s icemerge.Source) icemerge.Source {
	return &sourceCounter{Source: s, t: l.tracker, table: table}
}

func (l *logProgress) Close() {
	l.once.Do(func() {
		close(l.stop)
		l.wg.Wait()
	})
}

// SwitchWriter is the log's output: stderr, or the bars while they are
// drawn (mpb prints what is written to it above them).
type SwitchWriter struct {
	mu   sync.Mutex
	base io.Writer
	cur  io.Writer
}

func NewSwitchWriter(w io.Writer) *SwitchWriter { return &SwitchWriter{base: w, cur: w} }

func (s *SwitchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	w := s.cur
	s.mu.Unlock()
	n, err := w.Write(p)
	if err != nil && w != s.base {
		return s.base.Write(p) // the bars ended meanwhile
	}
	return n, err
}

func (s *SwitchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.cur = w
	s.mu.Unlock()
}

func (s *SwitchWriter) reset() { s.set(s.base) }
