package dialer

import (
	"context"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// maxEntryItems bounds the items of one Raft entry the engine proposes.
const maxEntryItems = 1000

// propose commits items through the leader (Applier.ApplyLeader, which
// never forwards) in entries of at most maxEntryItems: command builds an
// entry's command from its items, and committed, when not nil, is called
// after each entry commits with the entry's items and, in order, those the
// state machine accepted (CODE_OK). It stops at the first entry that fails,
// or when ctx ends, and returns that error; the entries before it stay
// committed (and were reported to committed).
func propose[T any](ctx context.Context, a Applier, items []T, command func(entry []T) *fsmpb.Command, committed func(entry, accepted []T)) error {
	for start := 0; start < len(items); start += maxEntryItems {
		if err := ctx.Err(); err != nil {
			return err
		}
		entry := items[start:min(start+maxEntryItems, len(items))]
		res, _, err := a.ApplyLeader(ctx, command(entry))
		if err != nil {
			return err
		}
		if committed != nil {
			committed(entry, acceptedItems(entry, res))
		}
	}
	return nil
}

// acceptedItems returns the items of entry whose result in res is
// CODE_OK (results are per item, in order).
func acceptedItems[T any](entry []T, res *fsmpb.ApplyResult) []T {
	results := res.GetItems()
	out := make([]T, 0, len(entry))
	for i, it := range entry {
		if i < len(results) && results[i].Code == fsmpb.Code_CODE_OK {
			out = append(out, it)
		}
	}
	return out
}

// byRequestID adapts a command constructor over request ids (such as
// fsm.ClaimCommand) to one over the requests themselves.
func byRequestID(command func(ids []string) *fsmpb.Command) func([]*fsmpb.Request) *fsmpb.Command {
	return func(rs []*fsmpb.Request) *fsmpb.Command {
		ids := make([]string, len(rs))
		for i, r := range rs {
			ids[i] = r.Id
		}
		return command(ids)
	}
}
