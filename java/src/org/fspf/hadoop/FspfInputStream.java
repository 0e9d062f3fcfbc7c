package org.fspf.hadoop;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import org.apache.hadoop.fs.ByteBufferPositionedReadable;
import org.apache.hadoop.fs.ByteBufferReadable;
import org.apache.hadoop.fs.FSInputStream;
import org.apache.hadoop.fs.StreamCapabilities;

/**
 * A file of a volume: every read is a verified pread in libfspf, straight into the caller's
 * array or direct buffer (no stream buffer of its own; Parquet and ORC read whole ranges).
 * Positioned reads are thread-safe and leave the stream position alone.
 */
final class FspfInputStream extends FSInputStream implements ByteBufferReadable, ByteBufferPositionedReadable, StreamCapabilities {
    private final FspfFileSystem fs;
    private final String path;
    private final long size;
    private long file;
    private long position;

    FspfInputStream(FspfFileSystem fs, String path, long file) {
        this.fs = fs;
        this.path = path;
        this.file = file;
        this.size = Native.size(file);
    }

    private long handle() throws IOException {
        if (file == 0) throw new IOException("fspf://" + path + ": stream is closed");
        return file;
    }

    @Override
    public synchronized void seek(long pos) throws IOException {
        if (pos < 0) throw new EOFException("fspf://" + path + ": cannot seek to a negative position " + pos);
        if (pos > size) throw new EOFException("fspf://" + path + ": cannot seek to " + pos + " past the end (" + size + ")");
        position = pos;
    }

    @Override
    public synchronized long getPos() {
        return position;
    }

    @Override
    public boolean seekToNewSource(long targetPos) {
        return false;
    }

    @Override
    public synchronized int available() throws IOException {
        handle();
        return (int) Math.min(Integer.MAX_VALUE, size - position);
    }

    @Override
    public synchronized int read() throws IOException {
        byte[] one = new byte[1];
        return read(one, 0, 1) == 1 ? one[0] & 0xff : -1;
    }

    @Override
    public synchronized int read(byte[] buffer, int offset, int len) throws IOException {
        if (len == 0) return 0;
        int got = Native.pread(handle(), position, buffer, offset, len);
        if (got == 0) return -1;
        position += got;
        fs.bytesRead(got);
        return got;
    }

    @Override
    public int read(long pos, byte[] buffer, int offset, int len) throws IOException {
        if (len == 0) return 0;
        int got = Native.pread(handle(), pos, buffer, offset, len);
        fs.bytesRead(got);
        return got == 0 ? -1 : got;
    }

    /** Reads into buf from its position to its limit (or until the end), advancing both positions. */
    private int readInto(long pos, ByteBuffer buf) throws IOException {
        int len = buf.remaining();
        if (len == 0) return 0;
        int got = buf.isDirect()
            ? Native.preadDirect(handle(), pos, buf, buf.position(), len)
            : Native.pread(handle(), pos, buf.array(), buf.arrayOffset() + buf.position(), len);
        if (got == 0) return -1;
        buf.position(buf.position() + got);
        fs.bytesRead(got);
        return got;
    }

    @Override
    public synchronized int read(ByteBuffer buf) throws IOException {
        int got = readInto(position, buf);
        if (got > 0) position += got;
        return got;
    }

    @Override
    public int read(long pos, ByteBuffer buf) throws IOException {
        return readInto(pos, buf);
    }

    @Override
    public void readFully(long pos, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            int got = readInto(pos, buf);
            if (got < 0) throw new EOFException("fspf://" + path + ": end of file reached before the buffer was filled");
            pos += got;
        }
    }

    @Override
    public boolean hasCapability(String capability) {
        switch (capability.toLowerCase(java.util.Locale.ROOT)) {
            case StreamCapabilities.READBYTEBUFFER:
            case StreamCapabilities.PREADBYTEBUFFER:
                return true;
            default:
                return false;
        }
    }

    @Override
    public synchronized void close() {
        if (file != 0) {
            Native.closeFile(file);
            file = 0;
        }
    }
}
