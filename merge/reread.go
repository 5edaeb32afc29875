package merge

import (
	"context"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// rereadAhead is how many files Plan.Records reads again at once: the one
// being written and the next, so decoding a file (one core) overlaps
// writing the one before it (the writers' cores). Each holds at most two
// of its records in memory: one queued, one being filtered.
const rereadAhead = 2

// rereadPart is one record of a file read again, or the error that ended
// its read.
type rereadPart struct {
	rec arrow.RecordBatch
	err error
}

// rereads reads files again on goroutines of their own, each into its own
// queue, which Plan.Records drains in source order: the rows and the errors
// come out in the order a serial read gives them.
type rereads struct {
	ctx    context.Context
	cancel context.CancelFunc
	p      *Plan
	mem    memory.Allocator
	queues map[int]chan rereadPart
	wg     sync.WaitGroup
}

func newRereads(ctx context.Context, p *Plan, mem memory.Allocator) *rereads {
	ctx, cancel := context.WithCancel(ctx)
	return &rereads{ctx: ctx, cancel: cancel, p: p, mem: mem, queues: map[int]chan rereadPart{}}
}

// start reads file fi again, unless it is being read.
func (r *rereads) start(fi int) {
	if _, ok := r.queues[fi]; ok {
		return
	}
	q := make(chan rereadPart, 1)
	r.queues[fi] = q
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(q)
		send := func(rec arrow.RecordBatch, err error) bool {
			select {
			case q <- rereadPart{rec, err}:
				return err == nil
			case <-r.ctx.Done():
				if rec != nil {
					rec.Release()
				}
				return false
			}
		}
		if _, err := r.p.reread(r.ctx, r.mem, fi, r.p.files[fi], send); err != nil {
			send(nil, err)
		}
	}()
}

// drain yields file fi's records in order (starting its read if need be);
// false: the consumer stopped.
func (r *rereads) drain(fi int, yield func(arrow.RecordBatch, error) bool) (bool, error) {
	r.start(fi)
	q := r.queues[fi]
	// Until the file is drained its queue stays listed: if the consumer
	// stops, stop frees what is left in it.
	for part := range q {
		if part.err != nil {
			return false, part.err
		}
		if !yield(part.rec, nil) {
			return false, nil
		}
	}
	delete(r.queues, fi)
	// A read cut short by the context (the run's: stop has not run yet)
	// may have dropped its last part: never take it for a whole file.
	if err := r.ctx.Err(); err != nil {
		return false, err
	}
	return true, nil
}

// stop ends the reads still going and frees what they queued.
func (r *rereads) stop() {
	r.cancel()
	for fi, q := range r.queues {
		for part := range q {
			if part.rec != nil {
				part.rec.Release()
			}
		}
		delete(r.queues, fi)
	}
	r.wg.Wait()
}
