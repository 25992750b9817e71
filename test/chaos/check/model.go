package check

import (
	"cmp"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/seed-7bfc04c2/dialtone/test/chaos/history"
)

// The model of one request, as its client sees it. The request operations
// are checked for linearizability per request (partitioned by token: ids
// are chosen by the cluster), with the dialer as a hidden second writer.
//
// A request is in one of four client-visible conditions: absent (never
// created), active (PENDING, INITIATED or IN_PROGRESS: the dialer may act
// on it), cancelled (PROCESSED/CANCELLED) and done (PROCESSED with SUCCESS
// or FAILURE, by the dialer or TTL expiry). The dialer moves a request from
// active to done at moments the history does not record, and between
// PENDING and IN_PROGRESS, which decides whether a cancel succeeds.
// So the model's state is the set of conditions the request may be in, closed
// under the dialer's move (active ⇒ done possible); each operation keeps the
// conditions its answer allows and applies its effect:
//
//	create ok        requires absent;            → {active, done}
//	get → 404        requires absent
//	get → state      requires that condition;    → it (closed)
//	cancel ok        requires active or cancelled → {cancelled}
//	cancel refused   IN_PROGRESS requires active; FINISHED requires done
//	cancel → 404     requires absent
//	unknown outcome  (create, cancel) the effect may or may not happen
//
// Gets use consistency=linearizable; gets without a definite answer are left
// out (a read has no effect). A create whose answer never came is kept with
// no return time. What this catches: a read that misses an acknowledged
// create or cancel (stale or lost), a request that goes back from processed
// to active or from done to cancelled, a cancel acknowledged on a request the
// dialer had already finished, a create answered twice.
type cond uint8

const (
	absent cond = 1 << iota
	active
	cancelled
	done
)

func (s cond) close() cond {
	if s&active != 0 {
		s |= done
	}
	return s
}

func (s cond) String() string {
	var parts []string
	for _, c := range []struct {
		c    cond
		name string
	}{{absent, "absent"}, {active, "active"}, {cancelled, "cancelled"}, {done, "done"}} {
		if s&c.c != 0 {
			parts = append(parts, c.name)
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// input and output of a modelled operation.
type input struct {
	kind history.Kind
}

type output struct {
	outcome string
	cond    cond // a get's answer
}

// condOf maps a get's answer to a condition.
func condOf(o history.Op) cond {
	switch {
	case o.Outcome == history.NotFound:
		return absent
	case o.State != "PROCESSED":
		return active
	case o.Result == "CANCELLED":
		return cancelled
	default:
		return done
	}
}

func step(state, in, out any) (bool, any) {
	s, i, o := state.(cond), in.(input), out.(output)
	switch i.kind {
	case history.Create:
		switch o.outcome {
		case history.OK:
			return s&absent != 0, (active).close()
		default: // unknown
			if s&absent == 0 {
				return true, s
			}
			return true, (s | active).close()
		}
	case history.Get:
		return s&o.cond != 0, o.cond.close()
	case history.Cancel:
		switch o.outcome {
		case history.OK:
			return s&(active|cancelled) != 0, cancelled
		case history.InProgress:
			return s&active != 0, (active).close()
		case history.Finished:
			return s&done != 0, done
		case history.NotFound:
			return s&absent != 0, absent
		default: // unknown
			if s&(active|cancelled) != 0 {
				return true, (s | cancelled).close()
			}
			return true, s
		}
	}
	return false, s
}

// Model is the porcupine model described above, partitioned by token.
var Model = porcupine.Model{
	Partition: func(ops []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range ops {
			k := op.Metadata.(history.Op).Token
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init:  func() any { return absent },
	Step:  step,
	Equal: func(a, b any) bool { return a.(cond) == b.(cond) },
	DescribeOperation: func(in, out any) string {
		i, o := in.(input), out.(output)
		if i.kind == history.Get && o.outcome == history.OK {
			return fmt.Sprintf("get -> %s", o.cond)
		}
		return fmt.Sprintf("%s -> %s", i.kind, o.outcome)
	},
	DescribeState: func(s any) string { return s.(cond).String() },
	DescribeOperationMetadata: func(m any) string {
		if m == nil {
			return ""
		}
		return m.(history.Op).String()
	},
}

// Operations turns the history's request operations into porcupine's.
func Operations(h *history.History) []porcupine.Operation {
	var out []porcupine.Operation
	t0 := h.Start
	for _, o := range h.Ops {
		if o.Kind == history.Get && o.Outcome == history.Unknown {
			continue
		}
		ret := int64(math.MaxInt64)
		if !o.Return.IsZero() {
			ret = o.Return.Sub(t0).Nanoseconds()
		}
		out = append(out, porcupine.Operation{
			ClientId: o.Client,
			Input:    input{kind: o.Kind},
			Call:     o.Invoke.Sub(t0).Nanoseconds(),
			Output:   output{outcome: o.Outcome, cond: condOf(o)},
			Return:   ret,
			Metadata: o,
		})
	}
	return out
}

// Linearizable checks the request operations against Model within timeout.
// When it fails and outDir is not empty, porcupine's HTML visualisation is
// written to outDir/linearizability.html.
func Linearizable(h *history.History, timeout time.Duration, outDir string) Report {
	ops := Operations(h)
	r := Report{Checker: "linearizable"}
	res, info := porcupine.CheckOperationsVerbose(Model, ops, timeout)
	r.Checked = fmt.Sprintf("%d operations on %d requests: %s", len(ops), len(Model.Partition(ops)), res)
	switch res {
	case porcupine.Ok:
	case porcupine.Unknown:
		r.Notes = append(r.Notes, fmt.Sprintf("the check timed out after %v: no violation found in that time", timeout))
	default:
		r.Findings = illegal(h, ops, info)
		if outDir != "" {
			path := filepath.Join(outDir, "linearizability.html")
			if err := porcupine.VisualizePath(Model, info, path); err != nil {
				r.Notes = append(r.Notes, "visualisation: "+err.Error())
			} else {
				r.Notes = append(r.Notes, "visualisation: "+path)
			}
		}
	}
	return r
}

// illegal finds the partitions (requests) that cannot be linearized and
// reports each with its operations.
func illegal(h *history.History, ops []porcupine.Operation, _ porcupine.LinearizationInfo) []Finding {
	var out []Finding
	for _, part := range Model.Partition(ops) {
		if porcupine.CheckOperations(Model, part) {
			continue
		}
		part = slices.Clone(part)
		slices.SortFunc(part, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
		tok := part[0].Metadata.(history.Op).Token
		var slice []string
		for _, op := range part {
			slice = append(slice, op.Metadata.(history.Op).String())
		}
		out = append(out, Finding{Message: fmt.Sprintf("the operations on token %s are not linearizable", tok), Slice: slice})
	}
	if len(out) == 0 {
		out = append(out, Finding{Message: "history not linearizable (no single partition isolated)"})
	}
	return out
}
