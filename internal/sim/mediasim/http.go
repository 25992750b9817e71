package mediasim

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// StatsHandler serves what the platforms saw, as JSON:
//
//	GET /stats                 {"platforms": [Stats, ...]}
//	GET /calls                 {"calls": [CallRecord, ...]} (oldest first)
//	GET /starts                {"platforms": [CallStarts, ...]} (every call's start time)
//
// Each takes ?tenant= (one platform); /calls also ?request_id= and ?limit=
// (the newest N per platform).
func StatsHandler(platforms ...*Platform) http.Handler {
	pick := func(w http.ResponseWriter, r *http.Request) ([]*Platform, bool) {
		t := r.URL.Query().Get("tenant")
		if t == "" {
			return platforms, true
		}
		for _, p := range platforms {
			if p.Tenant() == t {
				return []*Platform{p}, true
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no platform for tenant " + strconv.Quote(t)})
		return nil, false
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		ps, ok := pick(w, r)
		if !ok {
			return
		}
		out := struct {
			Platforms []Stats `json:"platforms"`
		}{Platforms: []Stats{}}
		for _, p := range ps {
			out.Platforms = append(out.Platforms, p.Stats())
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /starts", func(w http.ResponseWriter, r *http.Request) {
		ps, ok := pick(w, r)
		if !ok {
			return
		}
		out := struct {
			Platforms []CallStarts `json:"platforms"`
		}{Platforms: []CallStarts{}}
		for _, p := range ps {
			out.Platforms = append(out.Platforms, p.Starts())
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out) // compact: these lists are long
	})
	mux.HandleFunc("GET /calls", func(w http.ResponseWriter, r *http.Request) {
		ps, ok := pick(w, r)
		if !ok {
			return
		}
		limit := 0
		if l := r.URL.Query().Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 0 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit: want a whole number"})
				return
			}
			limit = n
		}
		out := struct {
			Calls []CallRecord `json:"calls"`
		}{Calls: []CallRecord{}}
		for _, p := range ps {
			out.Calls = append(out.Calls, p.CallsOf(r.URL.Query().Get("request_id"), limit)...)
		}
		writeJSON(w, http.StatusOK, out)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
