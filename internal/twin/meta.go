package twin

import (
	"encoding/json"
	"strconv"
	"time"
)

// Metadata keys, as Azure names them.
const (
	lastUpdatedKey        = "$lastUpdated"
	lastUpdatedVersionKey = "$lastUpdatedVersion"
)

// stamp is what a change writes into the metadata of every object and leaf
// it touches.
type stamp struct {
	at      string // RFC 3339 time with nanoseconds
	version int64  // the desired $version; 0 on the reported side, which has none
}

func newStamp(at time.Time, version int64) stamp {
	return stamp{at: at.UTC().Format(time.RFC3339Nano), version: version}
}

// set writes the stamp into one metadata object.
func (s stamp) set(m object) {
	m[lastUpdatedKey] = s.at
	if s.version > 0 {
		m[lastUpdatedVersionKey] = json.Number(strconv.FormatInt(s.version, 10))
	}
}

// leaf returns the metadata of a leaf written now.
func (s stamp) leaf() object {
	m := object{}
	s.set(m)
	return m
}

// mergeMeta updates meta, the metadata of a document, for the merge patch
// patch applied to that document. It mirrors merge: a deleted key loses its
// metadata, a replaced leaf gets fresh metadata (dropping that of any object
// it replaced), and an object patch stamps the object and recurses, so
// untouched members keep theirs. Every object on the way is stamped, as
// Azure does.
func mergeMeta(meta, patch object, s stamp) {
	s.set(meta)
	for k, v := range patch {
		switch v := v.(type) {
		case nil:
			delete(meta, k)
		case object:
			m, ok := meta[k].(object)
			if !ok {
				m = object{}
				meta[k] = m
			}
			mergeMeta(m, v, s)
		default:
			meta[k] = s.leaf()
		}
	}
}
