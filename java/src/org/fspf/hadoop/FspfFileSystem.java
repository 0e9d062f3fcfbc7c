package org.fspf.hadoop;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.net.URI;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.permission.FsPermission;
import org.apache.hadoop.util.Progressable;

/**
 * Hadoop (and so Spark) file system for {@code fspf://} URIs: reads a protected volume inside
 * the JVM through libfspf, every byte verified, nothing decrypted outside the process (no FUSE,
 * no privileged pod). Read-only.
 *
 * <pre>
 *   spark.hadoop.fs.fspf.impl        org.fspf.hadoop.FspfFileSystem   (jars given with --jars are not
 *                                    seen by Hadoop's service loader; on the class path they are)
 *   spark.hadoop.fs.fspf.volume      /volumes/data            the volume directory on every node
 *   spark.hadoop.fs.fspf.key-file    /keys/data.key           or key-env, key-url, key-broker + evidence …
 *   spark.hadoop.fs.fspf.tag         &lt;64 hex digits&gt;         or tag-env; a key-server reply carries it
 *   spark.hadoop.fs.fspf.library-dir /opt/fspf/lib            where libfspf_jni.so and libfspf.so are
 *   spark.read.parquet("fspf:///year=2024")
 * </pre>
 *
 * Several volumes: {@code fspf://NAME/path} takes its options from {@code fs.fspf.NAME.*}.
 * The option names are fspf-mount's (include/fspf.h, fspf_volume_open_options).
 */
public class FspfFileSystem extends FileSystem {
    /** fspf-mount's key and tag options, passed to libfspf as name=value. */
    static final String[] OPTIONS = {"key-file", "key-env", "key-fd", "key-url", "allow-remote-key-url", "key-url-ca", "key-timeout", "key-broker", "evidence",
        "volume-name", "broker-ca", "broker-identity", "attestation-dir", "collateral", "maa-attester", "attester-key", "simulated-mrenclave",
        "tag", "tag-env", "no-tag-check", "accept-v1"};
    static final long BLOCK_SIZE = 128L << 20;

    private URI uri;
    private Path workingDirectory;
    private long volume;
    private String description;

    @Override
    public String getScheme() {
        return "fspf";
    }

    @Override
    public void initialize(URI name, Configuration conf) throws IOException {
        super.initialize(name, conf);
        setConf(conf);
        String authority = name.getAuthority() == null ? "" : name.getAuthority();
        String prefix = authority.isEmpty() ? "fs.fspf." : "fs.fspf." + authority + ".";
        uri = URI.create("fspf://" + authority + "/");
        workingDirectory = new Path(uri);
        String path = conf.getTrimmed(prefix + "volume");
        if (path == null || path.isEmpty()) {
            throw new IOException(uri + ": set " + prefix + "volume (spark.hadoop." + prefix + "volume) to the volume directory");
        }
        Native.load(conf.getTrimmed(prefix + "library-dir", conf.getTrimmed("fs.fspf.library-dir")));
        List<String> options = new ArrayList<>();
        for (String option : OPTIONS) {
            String value = conf.getTrimmed(prefix + option);
            if (value != null) options.add(option + "=" + value);
        }
        volume = Native.open(path, options.toArray(new String[0]));
        description = uri + " (volume " + path + ", tag " + Native.tag(volume) + ")";
    }

    @Override
    public URI getUri() {
        return uri;
    }

    @Override
    public String toString() {
        return "FspfFileSystem " + description;
    }

    /** The path inside the volume ("/a/b") of a Hadoop path. */
    private String inVolume(Path path) {
        return makeQualified(path).toUri().getPath();
    }

    /** A Hadoop FileStatus; a symbolic link carries its target (listings show links as they are). */
    private FileStatus status(Path qualified, long[] s) throws IOException {
        boolean directory = s[0] == Native.TYPE_DIRECTORY;
        long mtime = s[3] * 1000 + s[4] / 1_000_000;
        FsPermission permission = new FsPermission((short) (s[1] & 0777));
        Path link = s[0] == Native.TYPE_SYMLINK ? new Path(Native.readlink(volume(), inVolume(qualified))) : null;
        return new FileStatus(directory ? 0 : s[2], directory, 1, BLOCK_SIZE, mtime, 0, permission,
            Long.toString(s[5]), Long.toString(s[6]), link, qualified);
    }

    @Override
    public FileStatus getFileStatus(Path path) throws IOException {
        Path qualified = makeQualified(path);
        return status(qualified, Native.stat(volume(), inVolume(qualified)));
    }

    @Override
    public FileStatus[] listStatus(Path path) throws IOException {
        Path qualified = makeQualified(path);
        String p = inVolume(qualified);
        long[] s = Native.stat(volume(), p);
        if (s[0] != Native.TYPE_DIRECTORY) return new FileStatus[] {status(qualified, s)};
        long[][] stats = new long[1][];
        String[] names = Native.list(volume(), p, stats);
        FileStatus[] out = new FileStatus[names.length];
        for (int i = 0; i < names.length; i++) {
            long[] one = new long[9];
            System.arraycopy(stats[0], i * 9, one, 0, 9);
            out[i] = status(new Path(qualified, names[i]), one);
        }
        return out;
    }

    @Override
    public FSDataInputStream open(Path path, int bufferSize) throws IOException {
        String p = inVolume(path);
        long file = Native.openFile(volume(), p);
        return new FSDataInputStream(new FspfInputStream(this, p, file));
    }

    void bytesRead(long count) {
        if (statistics != null && count > 0) statistics.incrementBytesRead(count);
    }

    private long volume() throws IOException {
        if (volume == 0) throw new IOException(uri + ": file system is closed");
        return volume;
    }

    @Override
    public Path getWorkingDirectory() {
        return workingDirectory;
    }

    @Override
    public void setWorkingDirectory(Path directory) {
        workingDirectory = makeQualified(directory);
    }

    @Override
    public long getDefaultBlockSize(Path path) {
        return BLOCK_SIZE;
    }

    @Override
    public synchronized void close() throws IOException {
        super.close();
        if (volume != 0) {
            Native.closeVolume(volume);
            volume = 0;
        }
    }

    private IOException readOnly(String operation, Path path) {
        return new IOException(makeQualified(path) + ": " + operation + " refused: fspf volumes are read-only "
            + "(write results to another file system, or to a read-write fspf-mount)");
    }

    @Override
    public FSDataOutputStream create(Path path, FsPermission permission, boolean overwrite, int bufferSize, short replication,
                                     long blockSize, Progressable progress) throws IOException {
        throw readOnly("create", path);
    }

    @Override
    public FSDataOutputStream append(Path path, int bufferSize, Progressable progress) throws IOException {
        throw readOnly("append", path);
    }

    @Override
    public boolean rename(Path source, Path destination) throws IOException {
        throw readOnly("rename", source);
    }

    @Override
    public boolean delete(Path path, boolean recursive) throws IOException {
        throw readOnly("delete", path);
    }

    @Override
    public boolean mkdirs(Path path, FsPermission permission) throws IOException {
        throw readOnly("mkdirs", path);
    }
}
