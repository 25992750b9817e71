package sipjudge

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// Entry is one line a UAS scenario of test/e2e/testdata/sipp or
// test/chaos/testdata/sipp logged with SIPp's <log message=...> action:
//
//	INVITE rid=<X-Dialtone-Request-ID> cid=<Call-ID> t=<clock_tick> tenant=... ani=... rna=...
//	ACKED rid=... cid=... t=... ftag=<caller's tag> ttag=<SIPp's tag>
//	END rid=... cid=... t=... how=caller_bye|callee_bye|cancel|dialtone_bye|486|...
//	BYEOK rid=... cid=... t=...
//	IVRUP rid=... cid=... t=...
type Entry struct {
	Kind     string            // INVITE, ACKED, END, BYEOK or IVRUP
	RID, CID string            // the request id and the call's Call-ID
	Tick     int64             // SIPp's clock: ms since it started
	Fields   map[string]string // every key=value of the line, rid, cid and t included
}

var logLine = regexp.MustCompile(`^(INVITE|ACKED|END|BYEOK|IVRUP) (.*)$`)

// ReadLog parses the SIPp log at path. A log SIPp has not created yet has
// no entries; on a read error the entries before it are returned with it.
func ReadLog(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sipp log: %w", err)
	}
	defer f.Close()
	es, err := parse(f)
	if err != nil {
		return es, fmt.Errorf("sipp log %s: %w", path, err)
	}
	return es, nil
}

// parse reads the entries of a SIPp log; SIPp's own lines and blank ones
// are skipped.
func parse(r io.Reader) ([]Entry, error) {
	var es []Entry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := logLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		e := Entry{Kind: m[1], Fields: map[string]string{}}
		for _, kv := range strings.Fields(m[2]) {
			k, v, _ := strings.Cut(kv, "=")
			e.Fields[k] = v
		}
		e.RID, e.CID = e.Fields["rid"], e.Fields["cid"]
		e.Tick, _ = strconv.ParseInt(e.Fields["t"], 10, 64)
		es = append(es, e)
	}
	return es, sc.Err()
}
