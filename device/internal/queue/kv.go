package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"go.etcd.io/bbolt"
)

// The key-value store: small named buckets in the queue's file for the
// SDK's other durable state (twin documents, reported-property patches,
// the cloud-to-device inbox). There is one file and one lock per device,
// so this state lives next to the records rather than in a second store.
//
// Writes go through the committer like Enqueue and Ack: an Update shares a
// transaction and an fsync with whatever else is waiting, and returns only
// once that commit is durable. Reads see the last committed state.
//
// Each value is stored as
//
//	format byte | value | crc32c(key | format byte | value) (4)
//
// so bit rot in a data page, which bbolt does not checksum, reads as
// ErrCorrupt instead of a wrong value.

// kvPrefix keeps key-value buckets apart from the records and meta
// buckets.
const kvPrefix = "kv/"

// kvFormat is the first byte of every stored value.
const kvFormat = 1

// ErrBadOp is wrapped by Update's errors for an op that can never be
// stored: an empty bucket name or key, or a key or value over bbolt's
// limits.
var ErrBadOp = errors.New("queue: bad key-value operation")

// KVOp is one change of a key-value bucket: it sets Key to Value, or
// deletes Key when Value is nil (an empty, non-nil Value is stored as the
// empty value).
type KVOp struct {
	Bucket string
	Key    []byte
	Value  []byte
}

// Update applies ops, in order, in one transaction together with the
// other requests of the same commit, and returns once that commit is
// fsynced: either all of ops are durable or none is. Buckets are created
// on first use. Deleting a key that is not there is not an error.
func (q *Queue) Update(ops ...KVOp) error {
	if len(ops) == 0 {
		return nil
	}
	kv := make([]KVOp, len(ops))
	for i, op := range ops {
		if err := checkOp(op); err != nil {
			return err
		}
		kv[i] = KVOp{Bucket: op.Bucket, Key: clone(op.Key)}
		if op.Value != nil {
			kv[i].Value = encodeValue(op.Key, op.Value)
		}
	}
	req := &request{kv: kv, done: make(chan struct{})}
	if err := q.submit(context.Background(), req); err != nil {
		return fmt.Errorf("queue: update %d keys: %w", len(ops), err)
	}
	return nil
}

// Put sets key in bucket to value; see Update.
func (q *Queue) Put(bucket string, key, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	return q.Update(KVOp{Bucket: bucket, Key: key, Value: value})
}

// Delete removes key from bucket; see Update.
func (q *Queue) Delete(bucket string, key []byte) error {
	return q.Update(KVOp{Bucket: bucket, Key: key})
}

// Get returns the value of key in bucket, or nil when there is none. The
// result is a copy the caller owns. A value that fails its checksum gives
// an error wrapping ErrCorrupt.
func (q *Queue) Get(bucket string, key []byte) ([]byte, error) {
	if q.isClosed() {
		return nil, ErrClosed
	}
	var out []byte
	err := q.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(kvPrefix + bucket))
		if b == nil {
			return nil
		}
		v := b.Get(key)
		if v == nil {
			return nil
		}
		var err error
		out, err = decodeValue(key, v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("queue: get %s/%x: %w", bucket, key, err)
	}
	return out, nil
}

// ForEach calls fn for every key of bucket in byte order, with copies of
// the key and value, inside one read transaction: fn sees one consistent
// state and must not call Update (it would wait for nothing). An error
// from fn stops the walk and is returned. A value that fails its checksum
// stops it with an error wrapping ErrCorrupt.
func (q *Queue) ForEach(bucket string, fn func(key, value []byte) error) error {
	if q.isClosed() {
		return ErrClosed
	}
	return q.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(kvPrefix + bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			val, err := decodeValue(k, v)
			if err != nil {
				return fmt.Errorf("queue: read %s/%x: %w", bucket, k, err)
			}
			return fn(clone(k), val)
		})
	})
}

func checkOp(op KVOp) error {
	switch {
	case op.Bucket == "" || len(kvPrefix)+len(op.Bucket) > bbolt.MaxKeySize:
		return fmt.Errorf("%w: bucket name %.32q", ErrBadOp, op.Bucket)
	case len(op.Key) == 0 || len(op.Key) > bbolt.MaxKeySize:
		return fmt.Errorf("%w: key of %d bytes", ErrBadOp, len(op.Key))
	case len(op.Value)+5 > bbolt.MaxValueSize:
		return fmt.Errorf("%w: value of %d bytes", ErrBadOp, len(op.Value))
	}
	return nil
}

// applyKV runs inside the commit's write transaction, after the records.
func applyKV(tx *bbolt.Tx, batch []*request) error {
	for _, req := range batch {
		for _, op := range req.kv {
			b, err := tx.CreateBucketIfNotExists([]byte(kvPrefix + op.Bucket))
			if err != nil {
				return fmt.Errorf("bucket %s: %w", op.Bucket, err)
			}
			if op.Value == nil {
				err = b.Delete(op.Key)
			} else {
				err = b.Put(op.Key, op.Value)
			}
			if err != nil {
				return fmt.Errorf("%s/%x: %w", op.Bucket, op.Key, err)
			}
		}
	}
	return nil
}

func encodeValue(key, value []byte) []byte {
	b := make([]byte, 0, 1+len(value)+4)
	b = append(b, kvFormat)
	b = append(b, value...)
	sum := crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, b)
	return binary.BigEndian.AppendUint32(b, sum)
}

// decodeValue checks a stored value and returns a copy of it: bbolt lends
// v only for the length of the transaction.
func decodeValue(key, v []byte) ([]byte, error) {
	if len(v) < 5 {
		return nil, fmt.Errorf("%w: value of %d bytes is too short", ErrCorrupt, len(v))
	}
	body, sum := v[:len(v)-4], binary.BigEndian.Uint32(v[len(v)-4:])
	if crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, body) != sum {
		return nil, fmt.Errorf("%w: value checksum mismatch", ErrCorrupt)
	}
	if body[0] != kvFormat {
		return nil, fmt.Errorf("%w: unknown value format %d", ErrCorrupt, body[0])
	}
	return clone(body[1:]), nil
}

func clone(b []byte) []byte { return append([]byte{}, b...) }
