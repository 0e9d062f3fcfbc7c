package org.fspf.hadoop;

/** The volume's bytes are not what its author sealed (tampered, truncated, swapped, or not the pinned version). */
public class IntegrityException extends FspfException {
    private static final long serialVersionUID = 1L;

    public IntegrityException(int code, String message) {
        super(code, message);
    }
}
