package io.kiln.sdk

import java.io.File
import java.security.MessageDigest
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext
import kotlinx.serialization.Serializable
import kotlinx.serialization.builtins.nullable
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.buildJsonObject
import kotlinx.serialization.json.put
import okhttp3.MediaType
import okhttp3.MediaType.Companion.toMediaTypeOrNull
import okhttp3.Request
import okhttp3.RequestBody
import okhttp3.RequestBody.Companion.toRequestBody
import okio.BufferedSink
import okio.buffer
import okio.source

/** An uploaded file. [url] is a signed download URL (see [Files.url] for a fresh one). */
@Serializable
data class KilnFile(
    val id: String,
    val filename: String,
    val contentType: String,
    val size: Int,
    val sha256: String? = null,
    val url: String,
    val createdAt: KilnTime,
)

/** A header the upload URL requires. */
@Serializable
data class UploadHeader(val name: String, val value: String)

/** Where and how to send a file's bytes (from createUpload). */
@Serializable
data class UploadTicket(
    val fileId: String,
    val url: String,
    val method: String,
    val headers: List<UploadHeader>,
    val expiresAt: KilnTime,
)

/**
 * File uploads through the ticket flow: createUpload, send the bytes with
 * exactly the ticket's method and headers, completeUpload. Attach the file
 * by passing its id in a model input (e.g. `avatarID`, `attachmentIDs`).
 */
class Files internal constructor(private val t: KilnTransport) {
    /** Uploads [bytes]; [onProgress] receives (bytes sent, total). */
    suspend fun upload(bytes: ByteArray, filename: String, contentType: String, onProgress: ((Long, Long) -> Unit)? = null): KilnFile =
        send(filename, contentType, bytes.size.toLong(), sha256(bytes.inputStream()), onProgress) { sink -> sink.write(bytes) }

    /** Uploads the file at [file], streaming it from disk. */
    suspend fun upload(file: File, contentType: String, filename: String = file.name, onProgress: ((Long, Long) -> Unit)? = null): KilnFile =
        send(filename, contentType, file.length(), withContext(Dispatchers.IO) { sha256(file.inputStream()) }, onProgress) { sink ->
            file.source().use { sink.writeAll(it) }
        }

    /**
     * Uploads a small file in one request to the GraphQL endpoint (uploadFile,
     * multipart; up to the server's KILN_MAX_MULTIPART_SIZE) instead of the
     * ticket flow; the same checks apply.
     */
    suspend fun uploadSmall(bytes: ByteArray, filename: String, contentType: String): KilnFile {
        val data = t.executeUpload(UPLOAD_FILE, filename, bytes.toRequestBody(contentType.toMediaTypeOrNull()))
        return decodeField(data, "uploadFile", KilnFile.serializer())
    }

    /** The file with a download URL valid for [expiresInSeconds], or null. */
    suspend fun get(id: String, expiresInSeconds: Int = 900): KilnFile? {
        val data = t.execute(FILE, buildJsonObject { put("id", id); put("expiresIn", expiresInSeconds) })
        return decodeField(data, "node", KilnFile.serializer().nullable)
    }

    /** A fresh signed download URL for a file. */
    suspend fun url(id: String, expiresInSeconds: Int = 900): String =
        get(id, expiresInSeconds)?.url ?: throw KilnException.NotFound("file $id not found")

    /**
     * A signed URL of a resized rendition of an image file (JPEG, PNG, GIF or
     * WebP), made by the server on the first request for it. [width] x [height]
     * must be one of the server's allowed sizes (KILN_IMAGE_SIZES, by default
     * 64, 128, 256, 512 and 1024 square); others fail with
     * [KilnException.Validation] (reason UNSUPPORTED_IMAGE_SIZE). [format]
     * defaults to PNG for PNG originals and JPEG for the others.
     */
    suspend fun imageUrl(id: String, width: Int, height: Int, fit: ImageFit = ImageFit.COVER, format: ImageFormat? = null, expiresInSeconds: Int = 900): String {
        val data = t.execute(FILE_IMAGE, buildJsonObject {
            put("id", id)
            put("expiresIn", expiresInSeconds)
            put("transform", buildJsonObject {
                put("width", width)
                put("height", height)
                put("fit", fit.name)
                if (format != null) put("format", format.name)
            })
        })
        val node = data["node"] as? JsonObject ?: throw KilnException.NotFound("file $id not found")
        return (node["url"] as? JsonPrimitive)?.content ?: throw KilnException.NotFound("file $id not found")
    }

    /** Downloads a file's bytes. */
    suspend fun download(id: String): ByteArray {
        val u = url(id, 300)
        return withContext(Dispatchers.IO) {
            try {
                t.checkOpen()
                t.httpClient.newCall(Request.Builder().url(u).build()).execute().use { r ->
                    if (!r.isSuccessful) throw KilnException.Server("HTTP_${r.code}", "download failed: HTTP ${r.code}")
                    r.body!!.bytes()
                }
            } catch (e: java.io.IOException) {
                t.checkOpen()
                throw KilnException.Network("download failed: ${e.message}", e)
            }
        }
    }

    private suspend fun send(filename: String, contentType: String, size: Long, sha: String, onProgress: ((Long, Long) -> Unit)?, write: (BufferedSink) -> Unit): KilnFile {
        val data = t.execute(CREATE_UPLOAD, buildJsonObject {
            put("input", buildJsonObject {
                put("filename", filename); put("contentType", contentType); put("size", size); put("sha256", sha)
            })
        })
        val ticket = decodeField(data, "createUpload", UploadTicket.serializer())
        val body = object : RequestBody() {
            override fun contentType(): MediaType? = contentType.toMediaTypeOrNull()
            override fun contentLength() = size
            override fun writeTo(sink: BufferedSink) {
                if (onProgress == null) { write(sink); return }
                val counting = object : okio.ForwardingSink(sink) {
                    var sent = 0L
                    override fun write(source: okio.Buffer, byteCount: Long) {
                        super.write(source, byteCount); sent += byteCount; onProgress(sent, size)
                    }
                }
                val out = counting.buffer()
                write(out)
                out.emit()
            }
        }
        val req = Request.Builder().url(ticket.url).method(ticket.method, body)
        for (h in ticket.headers) req.header(h.name, h.value)
        withContext(Dispatchers.IO) {
            try {
                t.checkOpen()
                t.httpClient.newCall(req.build()).execute().use { r ->
                    if (!r.isSuccessful) throw KilnException.Server("HTTP_${r.code}", "upload failed: HTTP ${r.code} ${r.body?.string()?.take(200)}")
                }
            } catch (e: java.io.IOException) {
                t.checkOpen()
                throw KilnException.Network("upload failed: ${e.message}", e)
            }
        }
        val done = t.execute(COMPLETE_UPLOAD, buildJsonObject { put("fileId", ticket.fileId) })
        return decodeField(done, "completeUpload", KilnFile.serializer())
    }

    private fun sha256(input: java.io.InputStream): String = input.use {
        val md = MessageDigest.getInstance("SHA-256")
        val buf = ByteArray(64 * 1024)
        while (true) {
            val n = it.read(buf)
            if (n < 0) break
            md.update(buf, 0, n)
        }
        md.digest().joinToString("") { b -> "%02x".format(b) }
    }

    internal companion object {
        const val CREATE_UPLOAD = "{{doc createUpload}}"
        const val COMPLETE_UPLOAD = "{{doc completeUpload}}"
        const val FILE = "{{doc file}}"
        const val FILE_IMAGE = "{{doc fileImage}}"
        const val UPLOAD_FILE = "{{doc uploadFile}}"
    }
}

/** How an image rendition fills its box ([Files.imageUrl]). */
enum class ImageFit {
    /** Fill the box, cropping what overflows (centred). */
    COVER,
    /** Fit the whole image inside the box, keeping its aspect ratio. */
    CONTAIN,
}

/** The encoding of an image rendition ([Files.imageUrl]). */
enum class ImageFormat { JPEG, PNG }
