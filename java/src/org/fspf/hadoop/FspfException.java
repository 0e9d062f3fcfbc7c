package org.fspf.hadoop;

import java.io.IOException;

/** A libfspf failure: {@code code} is the fspf_status of include/fspf.h; the message names path and cause. */
public class FspfException extends IOException {
    private static final long serialVersionUID = 1L;
    public final int code;

    public FspfException(int code, String message) {
        super(message);
        this.code = code;
    }
}
