package org.fspf.hadoop;

import java.io.IOException;
import java.nio.ByteBuffer;

/** JNI entry points into libfspf (java/native/fspf_jni.c over include/fspf.h). Handles are the C pointers. */
final class Native {
    private Native() {}

    private static volatile boolean loaded;

    /**
     * Loads libfspf_jni.so (which finds libfspf.so beside itself): from {@code directory} when
     * given ({@code fs.fspf.library-dir}), else from java.library.path / LD_LIBRARY_PATH.
     */
    static synchronized void load(String directory) throws IOException {
        if (loaded) return;
        try {
            if (directory != null && !directory.isEmpty()) {
                System.load(new java.io.File(directory, "libfspf_jni.so").getAbsolutePath());
            } else {
                System.loadLibrary("fspf_jni");
            }
        } catch (UnsatisfiedLinkError e) {
            throw new IOException("fspf: cannot load libfspf_jni.so (set fs.fspf.library-dir to the directory holding "
                + "libfspf_jni.so and libfspf.so, or put it on java.library.path): " + e.getMessage(), e);
        }
        loaded = true;
    }

    /** Opens a volume with fspf-mount's key and tag options ("name=value"); returns the handle. */
    static native long open(String volume, String[] options) throws IOException;
    static native void closeVolume(long volume);
    static native String tag(long volume) throws IOException;

    /** {type, mode, size, mtime seconds, mtime nanoseconds, uid, gid, region, inode}. */
    static native long[] stat(long volume, String path) throws IOException;
    /** Names of a directory's entries; their stats, 9 longs each, go to {@code stats[0]}. */
    static native String[] list(long volume, String path, long[][] stats) throws IOException;

    static native String readlink(long volume, String path) throws IOException;

    static native long openFile(long volume, String path) throws IOException;
    static native long size(long file);
    /** Reads up to len bytes at position into buffer[offset…]; the count, 0 at the end. */
    static native int pread(long file, long position, byte[] buffer, int offset, int len) throws IOException;
    /** The same into a direct buffer's bytes [offset, offset + len). */
    static native int preadDirect(long file, long position, ByteBuffer buffer, int offset, int len) throws IOException;
    static native void closeFile(long file);

    static final int TYPE_FILE = 1, TYPE_DIRECTORY = 2, TYPE_SYMLINK = 3;
}
