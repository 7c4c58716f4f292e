package prometheus

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// The streamed remote read format: each frame is the uvarint length of its
// data, the big-endian CRC-32 (Castagnoli) of the data, then the data.

func writeFrame(w io.Writer, data []byte) error {
	var hdr [binary.MaxVarintLen64 + 4]byte
	n := binary.PutUvarint(hdr[:], uint64(len(data)))
	binary.BigEndian.PutUint32(hdr[n:], crc32.Checksum(data, castagnoli))
	if _, err := w.Write(hdr[:n+4]); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

type frameReader struct {
	r     *bufio.Reader
	limit uint64
}

func newFrameReader(r io.Reader, limit uint64) *frameReader {
	return &frameReader{r: bufio.NewReader(r), limit: limit}
}

// next returns the data of the next frame, or io.EOF after the last.
func (f *frameReader) next() ([]byte, error) {
	size, err := binary.ReadUvarint(f.r)
	if err != nil {
		return nil, err
	}
	if size > f.limit {
		return nil, fmt.Errorf("frame of %d bytes exceeds the limit of %d", size, f.limit)
	}
	var crc [4]byte
	if _, err := io.ReadFull(f.r, crc[:]); err != nil {
		return nil, noEOF(err)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(f.r, data); err != nil {
		return nil, noEOF(err)
	}
	if crc32.Checksum(data, castagnoli) != binary.BigEndian.Uint32(crc[:]) {
		return nil, errors.New("corrupted frame: checksum mismatch")
	}
	return data, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

var errAnswerTooLarge = errors.New("answer too large")

// cappedReader fails with errAnswerTooLarge past n bytes, rather than
// ending the stream early as io.LimitReader would.
type cappedReader struct {
	r io.Reader
	n int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		// One byte more tells a stream that ends here from a longer one.
		var b [1]byte
		if n, _ := c.r.Read(b[:]); n > 0 {
			return 0, errAnswerTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}
