package store

import (
	"strconv"
	"strings"
	"sync"
)

// The store's SQL is written once, in the subset SQLite and PostgreSQL both accept:
// ? placeholders, RETURNING instead of LastInsertId, ON CONFLICT, coalesce, CASE.
// Where one text cannot serve both, the dialect picks (dialect.pick). On
// PostgreSQL each query text is rewritten once, when it is first used: ? becomes
// $1, $2, …; and each call's Go bool arguments become 0 or 1, as booleans are 0/1
// integers in both schemas.

// dialect is the database the store runs on.
type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

func (d dialect) String() string {
	if d == dialectPostgres {
		return "postgres"
	}
	return "sqlite"
}

// pick returns sqlite or postgres, whichever is d's.
func (d dialect) pick(sqlite, postgres string) string {
	if d == dialectPostgres {
		return postgres
	}
	return sqlite
}

// rewritten caches the PostgreSQL text of each query (query → $n text).
var rewritten sync.Map

// text is query as d runs it.
func (d dialect) text(query string) string {
	if d != dialectPostgres {
		return query
	}
	if q, ok := rewritten.Load(query); ok {
		return q.(string)
	}
	q := dollarParams(query)
	rewritten.Store(query, q)
	return q
}

// args converts call arguments for d: on PostgreSQL a bool becomes int64 0 or 1.
func (d dialect) args(args []any) []any {
	if d != dialectPostgres {
		return args
	}
	var out []any
	for i, a := range args {
		b, ok := a.(bool)
		if !ok {
			continue
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		out[i] = int64(0)
		if b {
			out[i] = int64(1)
		}
	}
	if out == nil {
		return args
	}
	return out
}

// dollarParams numbers the ? placeholders of query as $1, $2, …, leaving alone a ?
// inside a string literal ('…'), a quoted identifier ("…") or a comment.
func dollarParams(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			end := strings.IndexByte(query[i+1:], c)
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+2])
			i += end + 1
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			end := strings.IndexByte(query[i:], '\n')
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+1])
			i += end
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
