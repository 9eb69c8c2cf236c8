package version

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLine(t *testing.T) {
	t.Parallel()
	require.Equal(t, "durable api "+Version+" ("+runtime.Version()+")", Line("api"))
	require.Regexp(t, `^\d+\.\d+\.\d+$`, Version)
	require.Equal(t, "Durable/"+Version, UserAgent())
}
