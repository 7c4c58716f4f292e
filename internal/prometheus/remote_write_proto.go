package prometheus

import (
	"errors"
	"fmt"
	"io"
	"unsafe"
)

// Remote write bodies are read field by field rather than decoded whole
// (see remote_write2.go and decodeV1): the messages' own fields are read
// here exactly as their generated Unmarshal methods read them (the same
// varints, bounds and errors), strings as views of the decoded body.

// Wire types of protobuf.
const (
	wireBytes    = 2
	wireEndGroup = 4
)

var (
	errVarintOverflow = errors.New("proto: integer overflow")
	errInvalidLength  = errors.New("proto: negative length found during unmarshaling")
)

// fieldSet is a set of field numbers (each below 64), for protoFields.
type fieldSet uint64

func fields(nums ...int32) fieldSet {
	var s fieldSet
	for _, n := range nums {
		if n <= 0 || n >= 64 {
			panic("field number outside of a fieldSet")
		}
		s |= 1 << n
	}
	return s
}

func (s fieldSet) has(n int32) bool { return n > 0 && n < 64 && s&(1<<n) != 0 }

// protoFields calls fn with the number and contents of each field of the
// message data (named message), in order. A field whose number is not one
// of known is one the message does not define: an error (the generated
// code would keep it aside). Every known field of the messages read this
// way is length-delimited (strings, embedded messages): one of another wire
// type is an error, as it is for the generated code.
func protoFields(data []byte, message string, known fieldSet, fn func(field int32, body []byte) error) error {
	l := len(data)
	i := 0
	for i < l {
		// One-byte varints (every tag and length below 128) first.
		var wire uint64
		if b := data[i]; b < 0x80 {
			wire = uint64(b)
			i++
		} else {
			var err error
			if wire, i, err = protoVarint(data, i); err != nil {
				return err
			}
		}
		// As the generated code: the field number truncated to 32 bits.
		fieldNum := int32(wire >> 3)
		wireType := int(wire & 0x7)
		switch {
		case wireType == wireEndGroup:
			return errors.New("proto: wiretype end group for non-group")
		case fieldNum <= 0:
			return fmt.Errorf("proto: illegal tag %d (wire type %d)", fieldNum, wire)
		case !known.has(fieldNum):
			return fmt.Errorf("field %d, which %s does not define", fieldNum, message)
		case wireType != wireBytes:
			return fmt.Errorf("proto: wrong wireType = %d for field %d", wireType, fieldNum)
		}
		var n uint64
		if i < l && data[i] < 0x80 {
			n = uint64(data[i])
			i++
		} else {
			var err error
			if n, i, err = protoVarint(data, i); err != nil {
				return err
			}
		}
		size := int(n)
		if size < 0 || i+size < 0 {
			return errInvalidLength
		}
		end := i + size
		if end > l {
			return io.ErrUnexpectedEOF
		}
		if err := fn(fieldNum, data[i:end]); err != nil {
			return err
		}
		i = end
	}
	return nil
}

// protoVarint reads the varint at data[i:] as the generated code reads
// it, and returns it and the index after it.
func protoVarint(data []byte, i int) (uint64, int, error) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= 64 {
			return 0, i, errVarintOverflow
		}
		if i >= len(data) {
			return 0, i, io.ErrUnexpectedEOF
		}
		b := data[i]
		i++
		v |= uint64(b&0x7F) << shift
		if b < 0x80 {
			return v, i, nil
		}
	}
}

// plainSample reports whether data is a prometheus.Sample (or a
// io.prometheus.write.v2.Sample, the same fields) of nothing but its
// fields, each well formed: its value (field 1, 64 bits) and its
// timestamp (field 2, a varint), in any order and number, tags written
// in one byte. Such a sample decodes without error and without unknown
// fields; any other is read by the generated code, which tells.
func plainSample(data []byte) bool {
	i, l := 0, len(data)
	for i < l {
		switch data[i] {
		case 0x09: // field 1 (value), fixed 64 bits
			i += 9
			if i > l {
				return false
			}
		case 0x10: // field 2 (timestamp), a varint of at most 10 bytes
			i++
			n := 0
			for {
				if i >= l || n == 10 {
					return false
				}
				b := data[i]
				i++
				n++
				if b < 0x80 {
					break
				}
			}
		default:
			return false
		}
	}
	return true
}

// bodyString is b as a string sharing its bytes. The bodies read with it
// are not written after they are decoded, and neither they nor these
// strings outlive the check of the request (labels are copied by
// labels.ScratchBuilder, messages by formatting).
func bodyString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
