package org.fspf.hadoop;

/**
 * The volume's bytes are not what its author sealed (tampered, truncated, swapped, or not the
 * pinned version). An {@link Error}, not an {@link java.io.IOException}: Spark's
 * {@code spark.sql.files.ignoreCorruptFiles} (and {@code spark.files.ignoreCorruptFiles}) skip the
 * rest of any file whose read throws an IOException or a RuntimeException, so a job would go on
 * without the attacker's file and succeed on part of the data. An integrity failure must fail
 * the job whatever its settings; Spark fails the task (not the executor) for it.
 */
public class IntegrityError extends Error {
    private static final long serialVersionUID = 1L;
    /** The fspf_status of include/fspf.h (FSPF_E_INTEGRITY). */
    public final int code;

    public IntegrityError(int code, String message) {
        super(message);
        this.code = code;
    }
}
