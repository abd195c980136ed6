package devstack

import (
	"context"

	"github.com/amrpipe/amrpipe/pkg/testenv"
)

// Records reads the whole records stream as it is now, on a connection of its own
// (testenv.Records).
func (s *Stack) Records(ctx context.Context) (*testenv.Downstream, error) {
	nc, js, err := s.Connect()
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	return testenv.Records(ctx, js)
}
