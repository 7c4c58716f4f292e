package prometheus

import (
	"errors"
	"fmt"
	"io"
	"slices"
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

// protoFields calls fn with the number and contents of each field of the
// message data (named message), in order. A field whose number is not one
// of known is one the message does not define: an error (the generated
// code would keep it aside). Every known field of the messages read this
// way is length-delimited (strings, embedded messages): one of another wire
// type is an error, as it is for the generated code.
func protoFields(data []byte, message string, known []int32, fn func(field int32, body []byte) error) error {
	l := len(data)
	i := 0
	varint := func() (uint64, error) {
		var v uint64
		for shift := uint(0); ; shift += 7 {
			if shift >= 64 {
				return 0, errVarintOverflow
			}
			if i >= l {
				return 0, io.ErrUnexpectedEOF
			}
			b := data[i]
			i++
			v |= uint64(b&0x7F) << shift
			if b < 0x80 {
				return v, nil
			}
		}
	}
	for i < l {
		wire, err := varint()
		if err != nil {
			return err
		}
		// As the generated code: the field number truncated to 32 bits.
		fieldNum := int32(wire >> 3)
		wireType := int(wire & 0x7)
		switch {
		case wireType == wireEndGroup:
			return errors.New("proto: wiretype end group for non-group")
		case fieldNum <= 0:
			return fmt.Errorf("proto: illegal tag %d (wire type %d)", fieldNum, wire)
		case !slices.Contains(known, fieldNum):
			return fmt.Errorf("field %d, which %s does not define", fieldNum, message)
		case wireType != wireBytes:
			return fmt.Errorf("proto: wrong wireType = %d for field %d", wireType, fieldNum)
		}
		n, err := varint()
		if err != nil {
			return err
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
