import java.io.EOFException;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.Random;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.fspf.hadoop.IntegrityError;

/**
 * The Hadoop FileSystem contract as Spark uses it, against a real volume and its plain tree:
 *   java -cp fspf-hadoop.jar:PYSPARK_JARS/* FspfFileSystemCheck VOLUME KEYFILE TAG PLAIN TAMPERED LIBDIR
 * Prints "ok: N checks" or throws at the first failed check.
 */
public class FspfFileSystemCheck {
    static int checks;

    static void check(boolean ok, String what) {
        checks++;
        if (!ok) throw new AssertionError(what);
    }

    interface Call { void run() throws Exception; }

    static void fails(Class<? extends Throwable> type, String text, Call call) {
        checks++;
        try {
            call.run();
        } catch (Throwable t) {
            if (type.isInstance(t) && (text == null || String.valueOf(t.getMessage()).contains(text))) return;
            throw new AssertionError("expected " + type.getSimpleName() + " containing '" + text + "', got " + t, t);
        }
        throw new AssertionError("expected " + type.getSimpleName() + ", nothing was thrown");
    }

    static Configuration conf(String prefix, String volume, String keyFile, String tag, String lib) {
        Configuration c = new Configuration(false);
        c.set("fs.fspf.impl", "org.fspf.hadoop.FspfFileSystem");
        c.setBoolean("fs.fspf.impl.disable.cache", true);
        c.set("fs.fspf.library-dir", lib);
        c.set(prefix + "volume", volume);
        c.set(prefix + "key-file", keyFile);
        c.set(prefix + "tag", tag);
        return c;
    }

    public static void main(String[] args) throws Exception {
        String volume = args[0], keyFile = args[1], tag = args[2], plain = args[3], tampered = args[4], lib = args[5];
        FileSystem fs = FileSystem.get(URI.create("fspf:///"), conf("fs.fspf.", volume, keyFile, tag, lib));
        check(fs.getScheme().equals("fspf") && fs.getUri().toString().equals("fspf:///"), "uri " + fs.getUri());
        check(fs.getFileStatus(new Path("/")).isDirectory(), "root is a directory");

        // Every plain file: status and bytes, sequential (stream), positioned, and into buffers.
        Random rng = new Random(3);
        try (Stream<java.nio.file.Path> walk = Files.walk(Paths.get(plain))) {
            for (java.nio.file.Path p : (Iterable<java.nio.file.Path>) walk::iterator) {
                String rel = Paths.get(plain).relativize(p).toString();
                if (rel.isEmpty() || Files.isSymbolicLink(p)) continue;
                Path path = new Path("/" + rel);
                FileStatus s = fs.getFileStatus(path);
                check(s.getPath().equals(new Path("fspf:///" + rel)), "qualified path " + s.getPath());
                if (Files.isDirectory(p)) {
                    check(s.isDirectory(), rel + " is a directory");
                    String[] names = Files.list(p).map(x -> x.getFileName().toString()).sorted().toArray(String[]::new);
                    String[] listed = Arrays.stream(fs.listStatus(path)).map(x -> x.getPath().getName()).toArray(String[]::new);
                    check(Arrays.equals(names, listed), rel + ": listing " + Arrays.toString(listed));
                    continue;
                }
                byte[] bytes = Files.readAllBytes(p);
                check(s.isFile() && s.getLen() == bytes.length, rel + ": length " + s.getLen());
                check(s.getModificationTime() == Files.getLastModifiedTime(p).toMillis(), rel + ": mtime");
                try (FSDataInputStream in = fs.open(path)) {
                    byte[] all = new byte[bytes.length];
                    int at = 0;
                    while (at < all.length) {
                        int n = in.read(all, at, Math.min(all.length - at, 1 + rng.nextInt(100_000)));
                        check(n > 0, rel + ": read returned " + n + " at " + at);
                        at += n;
                    }
                    check(Arrays.equals(all, bytes) && in.read() == -1 && in.getPos() == bytes.length, rel + ": bytes");
                    for (int i = 0; i < 20 && bytes.length > 0; i++) {
                        int off = rng.nextInt(bytes.length), len = Math.min(bytes.length - off, 1 + rng.nextInt(70_000));
                        byte[] part = new byte[len];
                        in.readFully(off, part);
                        check(Arrays.equals(part, Arrays.copyOfRange(bytes, off, off + len)), rel + ": readFully at " + off);
                        ByteBuffer direct = ByteBuffer.allocateDirect(len), heap = ByteBuffer.allocate(len);
                        in.readFully(off, direct);
                        in.seek(off);
                        while (heap.hasRemaining()) in.read(heap);
                        direct.flip();
                        heap.flip();
                        check(direct.equals(ByteBuffer.wrap(part)) && heap.equals(ByteBuffer.wrap(part)), rel + ": buffers at " + off);
                    }
                    fails(EOFException.class, null, () -> in.readFully(bytes.length - 1, new byte[2]));
                    fails(EOFException.class, "past the end", () -> in.seek(bytes.length + 1));
                }
            }
        }

        // Globbing and partition directories, as Spark's file index walks them.
        FileStatus[] parquet = fs.globStatus(new Path("/trips/year=*/month=*/*.parquet"));
        check(parquet.length == 3 && parquet[1].getPath().equals(new Path("fspf:///trips/year=2024/month=2/yellow_tripdata_2024-02.parquet")),
            "glob " + Arrays.toString(parquet));
        check(fs.listStatus(new Path("/csv/fares.csv")).length == 1, "listStatus of a file");
        FileStatus link = fs.getFileLinkStatus(new Path("/link"));
        check(link.isSymlink() && link.getSymlink().toString().equals("csv/fares.csv"), "symlink " + link);

        // Errors: missing paths, writes, a directory opened.
        fails(FileNotFoundException.class, "no/such", () -> fs.getFileStatus(new Path("/no/such")));
        fails(FileNotFoundException.class, null, () -> fs.open(new Path("/missing")));
        fails(IOException.class, "not a regular file", () -> fs.open(new Path("/csv")));
        fails(IOException.class, "read-only", () -> fs.create(new Path("/new.txt")));
        fails(IOException.class, "read-only", () -> fs.delete(new Path("/csv/fares.csv"), false));
        fails(IOException.class, "read-only", () -> fs.rename(new Path("/csv"), new Path("/csv2")));
        fails(IOException.class, "read-only", () -> fs.mkdirs(new Path("/d")));
        fails(IOException.class, "read-only", () -> fs.append(new Path("/csv/fares.csv")));

        // A second volume by authority (fs.fspf.NAME.*): the tampered copy; its altered file fails.
        Configuration two = conf("fs.fspf.copy.", tampered, keyFile, tag, lib);
        FileSystem copy = FileSystem.get(URI.create("fspf://copy/"), two);
        check(copy.getUri().toString().equals("fspf://copy/"), "authority uri");
        byte[] small = Files.readAllBytes(Paths.get(plain, "bin/b16385"));
        byte[] got = new byte[small.length];
        try (FSDataInputStream in = copy.open(new Path("/bin/b16385"))) { in.readFully(0, got); }
        check(Arrays.equals(got, small), "an unaltered file of the tampered copy reads");
        fails(IntegrityError.class, "bin/b3000001: integrity check failed", () -> {
            try (FSDataInputStream in = copy.open(new Path("/bin/b3000001"))) { in.readFully(0, new byte[3_000_001]); }
        });
        copy.close();
        fails(IOException.class, "closed", () -> copy.getFileStatus(new Path("/")));

        // Refusals when opening: another tag, no volume configured.
        fails(IntegrityError.class, "not the expected",
            () -> FileSystem.get(URI.create("fspf:///"), conf("fs.fspf.", volume, keyFile, "00" + tag.substring(2), lib)));
        Configuration none = conf("fs.fspf.", volume, keyFile, tag, lib);
        none.unset("fs.fspf.volume");
        fails(IOException.class, "fs.fspf.volume", () -> FileSystem.get(URI.create("fspf:///"), none));
        fs.close();
        System.out.println("ok: " + checks + " checks");
    }
}
