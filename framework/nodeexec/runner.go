package nodeexec

import "context"

// Runner runs argv on a cluster node and returns its standard output; a failure carries the
// command line and its output. PodRunner and framework/cluster's *Cluster satisfy it.
type Runner interface {
	NodeExec(ctx context.Context, node string, argv ...string) ([]byte, error)
}
