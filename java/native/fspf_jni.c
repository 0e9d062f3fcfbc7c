/*
 * libfspf_jni.so: the JNI side of org.fspf.hadoop.Native, only translating between Java and
 * include/fspf.h (strings, arrays, exceptions). Built by scripts/build-java.sh with RUNPATH
 * $ORIGIN, so libfspf.so is found beside it.
 */
#include <jni.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fspf.h"

#define HANDLE(h) ((void *)(intptr_t)(h))

/* Throws the Java exception for a failed status: FileNotFoundException for a missing path,
 * IllegalArgumentException for a bad argument, IntegrityError (an Error, which no
 * ignoreCorruptFiles setting swallows) for a failed check, else FspfException, each with
 * libfspf's message. */
static void throw_status(JNIEnv *env, fspf_status status, const fspf_error *err) {
    const char *message = err->message[0] ? err->message : fspf_strerror(status);
    if (status == FSPF_E_NOT_FOUND || status == FSPF_E_USAGE) {
        jclass c = (*env)->FindClass(env, status == FSPF_E_NOT_FOUND ? "java/io/FileNotFoundException" : "java/lang/IllegalArgumentException");
        if (c) (*env)->ThrowNew(env, c, message);
        return;
    }
    jclass c = (*env)->FindClass(env, status == FSPF_E_INTEGRITY ? "org/fspf/hadoop/IntegrityError" : "org/fspf/hadoop/FspfException");
    if (!c) return;
    jmethodID init = (*env)->GetMethodID(env, c, "<init>", "(ILjava/lang/String;)V");
    jstring text = (*env)->NewStringUTF(env, message);
    if (!init || !text) return;
    jobject e = (*env)->NewObject(env, c, init, (jint)status, text);
    if (e) (*env)->Throw(env, (jthrowable)e);
}

/* The 9 longs of org.fspf.hadoop.Native.stat. */
static void stat_values(const fspf_stat *s, jlong v[9]) {
    jlong values[9] = {s->type, s->mode, (jlong)s->size, s->mtime_sec, s->mtime_nsec, s->uid, s->gid, s->region, (jlong)s->inode};
    memcpy(v, values, sizeof values);
}

static jlongArray stat_array(JNIEnv *env, const fspf_stat *s) {
    jlong v[9];
    stat_values(s, v);
    jlongArray a = (*env)->NewLongArray(env, 9);
    if (a) (*env)->SetLongArrayRegion(env, a, 0, 9, v);
    return a;
}

JNIEXPORT jlong JNICALL Java_org_fspf_hadoop_Native_open(JNIEnv *env, jclass cls, jstring volume, jobjectArray options) {
    (void)cls;
    jsize count = options ? (*env)->GetArrayLength(env, options) : 0;
    const char **list = calloc((size_t)count + 1, sizeof *list);
    jstring *strings = calloc((size_t)count + 1, sizeof *strings);
    const char *path = (*env)->GetStringUTFChars(env, volume, NULL);
    fspf_volume *v = NULL;
    if (list && strings && path) {
        jsize i;
        for (i = 0; i < count; i++) {
            strings[i] = (jstring)(*env)->GetObjectArrayElement(env, options, i);
            if (!strings[i] || !(list[i] = (*env)->GetStringUTFChars(env, strings[i], NULL))) break;
        }
        if (i == count) {
            fspf_error err;
            fspf_status s = fspf_volume_open_options(path, list, &v, &err);
            if (s != FSPF_OK) throw_status(env, s, &err);
        }
        for (jsize j = 0; j < i; j++) (*env)->ReleaseStringUTFChars(env, strings[j], list[j]);
    }
    if (path) (*env)->ReleaseStringUTFChars(env, volume, path);
    /* Option strings may hold a tag or a key-file path, never the key: nothing to wipe. */
    free(list);
    free(strings);
    return (jlong)(intptr_t)v;
}

JNIEXPORT void JNICALL Java_org_fspf_hadoop_Native_closeVolume(JNIEnv *env, jclass cls, jlong volume) {
    (void)env, (void)cls;
    fspf_volume_close(HANDLE(volume));
}

JNIEXPORT jstring JNICALL Java_org_fspf_hadoop_Native_tag(JNIEnv *env, jclass cls, jlong volume) {
    (void)cls;
    char tag[65];
    fspf_error err;
    fspf_status s = fspf_volume_tag(HANDLE(volume), tag, &err);
    if (s != FSPF_OK) {
        throw_status(env, s, &err);
        return NULL;
    }
    return (*env)->NewStringUTF(env, tag);
}

JNIEXPORT jlongArray JNICALL Java_org_fspf_hadoop_Native_stat(JNIEnv *env, jclass cls, jlong volume, jstring path) {
    (void)cls;
    const char *p = (*env)->GetStringUTFChars(env, path, NULL);
    if (!p) return NULL;
    fspf_stat st;
    fspf_error err;
    fspf_status s = fspf_stat_path(HANDLE(volume), p, &st, &err);
    (*env)->ReleaseStringUTFChars(env, path, p);
    if (s != FSPF_OK) {
        throw_status(env, s, &err);
        return NULL;
    }
    return stat_array(env, &st);
}

JNIEXPORT jobjectArray JNICALL Java_org_fspf_hadoop_Native_list(JNIEnv *env, jclass cls, jlong volume, jstring path, jobjectArray stats) {
    (void)cls;
    const char *p = (*env)->GetStringUTFChars(env, path, NULL);
    if (!p) return NULL;
    fspf_dir *d = NULL;
    fspf_error err;
    fspf_status s = fspf_list(HANDLE(volume), p, &d, &err);
    (*env)->ReleaseStringUTFChars(env, path, p);
    if (s != FSPF_OK) {
        throw_status(env, s, &err);
        return NULL;
    }
    jsize n = (jsize)fspf_dir_count(d);
    jclass string = (*env)->FindClass(env, "java/lang/String");
    jobjectArray names = string ? (*env)->NewObjectArray(env, n, string, NULL) : NULL;
    jlongArray flat = (*env)->NewLongArray(env, n * 9);
    if (names && flat) {
        for (jsize i = 0; i < n; i++) {
            fspf_stat st;
            jlong v[9];
            fspf_dir_stat(d, (size_t)i, &st, NULL);
            stat_values(&st, v);
            (*env)->SetLongArrayRegion(env, flat, i * 9, 9, v);
            jstring name = (*env)->NewStringUTF(env, fspf_dir_name(d, (size_t)i));
            if (!name) break;
            (*env)->SetObjectArrayElement(env, names, i, name);
            (*env)->DeleteLocalRef(env, name);
        }
        if (!(*env)->ExceptionCheck(env)) (*env)->SetObjectArrayElement(env, stats, 0, flat);
    }
    fspf_dir_close(d);
    return (*env)->ExceptionCheck(env) ? NULL : names;
}

JNIEXPORT jstring JNICALL Java_org_fspf_hadoop_Native_readlink(JNIEnv *env, jclass cls, jlong volume, jstring path) {
    (void)cls;
    const char *p = (*env)->GetStringUTFChars(env, path, NULL);
    if (!p) return NULL;
    char target[4097];
    size_t length = 0;
    fspf_error err;
    fspf_status s = fspf_readlink(HANDLE(volume), p, target, sizeof target, &length, &err);
    (*env)->ReleaseStringUTFChars(env, path, p);
    if (s != FSPF_OK) {
        throw_status(env, s, &err);
        return NULL;
    }
    return (*env)->NewStringUTF(env, target);
}

JNIEXPORT jlong JNICALL Java_org_fspf_hadoop_Native_openFile(JNIEnv *env, jclass cls, jlong volume, jstring path) {
    (void)cls;
    const char *p = (*env)->GetStringUTFChars(env, path, NULL);
    if (!p) return 0;
    fspf_file *f = NULL;
    fspf_error err;
    fspf_status s = fspf_open(HANDLE(volume), p, &f, &err);
    (*env)->ReleaseStringUTFChars(env, path, p);
    if (s != FSPF_OK) throw_status(env, s, &err);
    return (jlong)(intptr_t)f;
}

JNIEXPORT jlong JNICALL Java_org_fspf_hadoop_Native_size(JNIEnv *env, jclass cls, jlong file) {
    (void)env, (void)cls;
    return (jlong)fspf_file_size(HANDLE(file));
}

/* Pinning a Java array blocks the garbage collector while it is held: long reads are done in
 * pieces of at most this size, each pinned only while libfspf fills it. */
#define PIN_LIMIT (4 << 20)

JNIEXPORT jint JNICALL Java_org_fspf_hadoop_Native_pread(JNIEnv *env, jclass cls, jlong file, jlong position, jbyteArray buffer,
                                                         jint offset, jint len) {
    (void)cls;
    jsize capacity = (*env)->GetArrayLength(env, buffer);
    if (offset < 0 || len < 0 || position < 0 || offset > capacity - len) {
        jclass c = (*env)->FindClass(env, "java/lang/IndexOutOfBoundsException");
        if (c) (*env)->ThrowNew(env, c, "fspf: read outside the buffer or at a negative position");
        return -1;
    }
    jint total = 0;
    while (total < len) {
        jint piece = len - total < PIN_LIMIT ? len - total : PIN_LIMIT;
        jbyte *bytes = (*env)->GetPrimitiveArrayCritical(env, buffer, NULL);
        if (!bytes) return -1;
        size_t got = 0;
        fspf_error err;
        fspf_status s = fspf_pread(HANDLE(file), bytes + offset + total, (size_t)piece, (uint64_t)position + (uint64_t)total, &got, &err);
        (*env)->ReleasePrimitiveArrayCritical(env, buffer, bytes, 0);
        if (s != FSPF_OK) {
            throw_status(env, s, &err);
            return -1;
        }
        total += (jint)got;
        if ((jint)got < piece) break; /* the end of the file */
    }
    return total;
}

JNIEXPORT jint JNICALL Java_org_fspf_hadoop_Native_preadDirect(JNIEnv *env, jclass cls, jlong file, jlong position, jobject buffer,
                                                               jint offset, jint len) {
    (void)cls;
    char *base = (*env)->GetDirectBufferAddress(env, buffer);
    jlong capacity = (*env)->GetDirectBufferCapacity(env, buffer);
    if (!base || offset < 0 || len < 0 || position < 0 || (jlong)offset + len > capacity) {
        jclass c = (*env)->FindClass(env, "java/lang/IllegalArgumentException");
        if (c) (*env)->ThrowNew(env, c, "fspf: not a direct buffer, or a read outside it");
        return -1;
    }
    size_t got = 0;
    fspf_error err;
    fspf_status s = fspf_pread(HANDLE(file), base + offset, (size_t)len, (uint64_t)position, &got, &err);
    if (s != FSPF_OK) {
        throw_status(env, s, &err);
        return -1;
    }
    return (jint)got;
}

JNIEXPORT void JNICALL Java_org_fspf_hadoop_Native_closeFile(JNIEnv *env, jclass cls, jlong file) {
    (void)env, (void)cls;
    fspf_close(HANDLE(file));
}
