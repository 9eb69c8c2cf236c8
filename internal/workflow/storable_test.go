package workflow

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckStorable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		json string
		want error
		path string
	}{
		{`{"a": "plain"}`, nil, ""},
		{`{"a": "emoji 😀 and \ud83d\ude00"}`, nil, ""},
		{`{"a": "escaped backslash \\u0000 is text"}`, nil, ""},
		{`{"a": "tab\t and quote \" and \u00e9", "b": [1, {"c": null}]}`, nil, ""},
		{`123`, nil, ""},
		{`{"\u0000": 1}`, ErrNULCharacter, "/\x00"},
		{`["ok", "x\u0000y"]`, ErrNULCharacter, "/1"},
		{`{"a": {"b/c": ["x", "\u0000"]}}`, ErrNULCharacter, "/a/b~1c/1"},
		{`"\ud800"`, ErrLoneSurrogate, ""},
		{`{"input": {"s": "\ud800x"}}`, ErrLoneSurrogate, "/input/s"},
		{`["\ud800\u0041"]`, ErrLoneSurrogate, "/0"},
		{`["\ud800\ud800\udc00"]`, ErrLoneSurrogate, "/0"},
		{`{"k": 1, "l": "\udc00"}`, ErrLoneSurrogate, "/l"},
		{`["\ud800\n"]`, ErrLoneSurrogate, "/0"},
	} {
		err := CheckStorable([]byte(tc.json))
		if tc.want == nil {
			require.NoError(t, err, tc.json)
			continue
		}
		require.ErrorIs(t, err, tc.want, tc.json)
		var se *StorableError
		require.ErrorAs(t, err, &se)
		require.Equal(t, tc.path, se.Path, tc.json)
	}
}
