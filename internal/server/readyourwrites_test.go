package server

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/seed-7bfc04c2/dialtone/internal/cluster"
)

func TestNotAppliedLocallyIsDeadlineExceededSayingItTookEffect(t *testing.T) {
	err := replError(fmt.Errorf("%w: index 9 committed", cluster.ErrNotAppliedLocally))
	st := status.Convert(err)
	if st.Code() != codes.DeadlineExceeded || !strings.Contains(st.Message(), "the write took effect") || !strings.Contains(st.Message(), "index 9") {
		t.Fatalf("status = %v", st)
	}
}
