package merge

import (
	"context"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sync/semaphore"
)

// rereadAhead is how many files Plan.Records reads again at once: the one
// being written and the next, so decoding a file (one core) overlaps
// writing the one before it (the writers' cores). Each queues at most
// rereadQueueBytes of its records (and one record more, however large),
// so the next file decodes well ahead while memory stays bounded.
const (
	rereadAhead      = 2
	rereadQueueBytes = 16 << 20
)

// rereadPart is one record of a file read again, or the error that ended
// its read.
type rereadPart struct {
	rec   arrow.RecordBatch
	err   error
	bytes int64 // what rec holds of its queue's room
}

// rereadQueue is one file's queue and the room left in it.
type rereadQueue struct {
	parts chan rereadPart
	room  *semaphore.Weighted
}

// rereads reads files again on goroutines of their own, each into its own
// queue, which Plan.Records drains in source order: the rows and the errors
// come out in the order a serial read gives them.
type rereads struct {
	ctx    context.Context
	cancel context.CancelFunc
	p      *Plan
	mem    memory.Allocator
	queues map[int]rereadQueue
	wg     sync.WaitGroup
}

func newRereads(ctx context.Context, p *Plan, mem memory.Allocator) *rereads {
	ctx, cancel := context.WithCancel(ctx)
	return &rereads{ctx: ctx, cancel: cancel, p: p, mem: mem, queues: map[int]rereadQueue{}}
}

// start reads file fi again, unless it is being read.
func (r *rereads) start(fi int) {
	if _, ok := r.queues[fi]; ok {
		return
	}
	q := rereadQueue{parts: make(chan rereadPart, 256), room: semaphore.NewWeighted(rereadQueueBytes)}
	r.queues[fi] = q
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(q.parts)
		send := func(rec arrow.RecordBatch, err error) bool {
			n := int64(0)
			if rec != nil {
				n = min(RecordBytes(rec), rereadQueueBytes)
				if q.room.Acquire(r.ctx, n) != nil {
					rec.Release()
					return false
				}
			}
			select {
			case q.parts <- rereadPart{rec, err, n}:
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
	for part := range q.parts {
		if part.err != nil {
			return false, part.err
		}
		q.room.Release(part.bytes)
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
		for part := range q.parts {
			if part.rec != nil {
				part.rec.Release()
			}
		}
		delete(r.queues, fi)
	}
	r.wg.Wait()
}
