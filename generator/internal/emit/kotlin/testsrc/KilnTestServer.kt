package io.kiln.sdk

// The SDK's own tests (generated with it, independent of the app's schema):
// a tiny GraphQL server on the loopback interface for them, and the program
// KilnRuntimeTest runs in a child JVM to show that close() lets a JVM exit.

import java.io.BufferedInputStream
import java.io.ByteArrayOutputStream
import java.io.IOException
import java.io.InputStream
import java.io.OutputStream
import java.net.InetAddress
import java.net.ServerSocket
import java.net.Socket
import java.security.MessageDigest
import java.util.Base64
import java.util.concurrent.CopyOnWriteArrayList
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.jsonObject

/**
 * A GraphQL server for the runtime's tests, on 127.0.0.1: [answer] answers
 * each POST (the request's JSON in, the response's JSON out);
 * graphql-transport-ws upgrades are acknowledged, and each `subscribe` gets
 * one `next` event with data `{"n":1}`. Its threads are daemon threads.
 */
class KilnTestServer(private val answer: (JsonObject) -> String = { """{"data":{"viewer":null}}""" }) : AutoCloseable {
    private val server = ServerSocket(0, 50, InetAddress.getLoopbackAddress())
    private val clients = CopyOnWriteArrayList<Socket>()

    /** The GraphQL endpoint. */
    val url: String = "http://127.0.0.1:${server.localPort}/graphql"

    /** The JSON of every POST received, in order. */
    val requests = CopyOnWriteArrayList<JsonObject>()

    /** The Authorization header of every POST received ("" without one), in order. */
    val authorizations = CopyOnWriteArrayList<String>()

    init {
        Thread({ accept() }, "kiln-test-server").apply { isDaemon = true; start() }
    }

    override fun close() {
        server.close()
        for (c in clients) runCatching { c.close() }
    }

    private fun accept() {
        while (true) {
            val c = try {
                server.accept()
            } catch (e: IOException) {
                return
            }
            clients.add(c)
            Thread({ runCatching { c.use { serve(it) } } }, "kiln-test-connection").apply { isDaemon = true; start() }
        }
    }

    private fun serve(c: Socket) {
        val input = BufferedInputStream(c.getInputStream())
        val out = c.getOutputStream()
        val head = readHead(input) ?: return
        val headers = head.drop(1).associate { it.substringBefore(":").trim().lowercase() to it.substringAfter(":").trim() }
        if (headers["upgrade"].equals("websocket", ignoreCase = true)) {
            webSocket(input, out, headers["sec-websocket-key"] ?: return)
            return
        }
        val length = headers["content-length"]?.toIntOrNull() ?: 0
        val body = String(readN(input, length), Charsets.UTF_8)
        val request = KilnJson.parseToJsonElement(body).jsonObject
        requests.add(request)
        authorizations.add(headers["authorization"] ?: "")
        val response = answer(request).toByteArray(Charsets.UTF_8)
        out.write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${response.size}\r\nConnection: close\r\n\r\n".toByteArray())
        out.write(response)
        out.flush()
    }

    private fun webSocket(input: InputStream, out: OutputStream, key: String) {
        val accept = Base64.getEncoder().encodeToString(
            MessageDigest.getInstance("SHA-1").digest((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").toByteArray()))
        out.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Accept: $accept\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n").toByteArray())
        out.flush()
        while (true) {
            val (opcode, payload) = readFrame(input) ?: return
            when (opcode) {
                1 -> {
                    val msg = KilnJson.parseToJsonElement(String(payload, Charsets.UTF_8)).jsonObject
                    when ((msg["type"] as? JsonPrimitive)?.content) {
                        "connection_init" -> sendText(out, """{"type":"connection_ack"}""")
                        "ping" -> sendText(out, """{"type":"pong"}""")
                        "subscribe" -> {
                            val id = (msg["id"] as JsonPrimitive).content
                            sendText(out, """{"id":"$id","type":"next","payload":{"data":{"n":1}}}""")
                        }
                    }
                }
                8 -> { // close: answer it, then the connection ends
                    sendFrame(out, 8, payload)
                    return
                }
                9 -> sendFrame(out, 10, payload)
            }
        }
    }

    private fun sendText(out: OutputStream, text: String) = sendFrame(out, 1, text.toByteArray(Charsets.UTF_8))

    private fun sendFrame(out: OutputStream, opcode: Int, payload: ByteArray) {
        synchronized(out) {
            out.write(0x80 or opcode)
            when {
                payload.size < 126 -> out.write(payload.size)
                payload.size < 65536 -> { out.write(126); out.write(payload.size shr 8); out.write(payload.size and 0xff) }
                else -> { out.write(127); for (i in 7 downTo 0) out.write(((payload.size.toLong() shr (8 * i)) and 0xff).toInt()) }
            }
            out.write(payload)
            out.flush()
        }
    }

    /** One client frame (unmasked), or null at the end of the stream. */
    private fun readFrame(input: InputStream): Pair<Int, ByteArray>? {
        val b0 = input.read()
        val b1 = input.read()
        if (b0 < 0 || b1 < 0) return null
        var length = (b1 and 0x7f).toLong()
        if (length == 126L) length = readN(input, 2).fold(0L) { acc, b -> (acc shl 8) or (b.toLong() and 0xff) }
        else if (length == 127L) length = readN(input, 8).fold(0L) { acc, b -> (acc shl 8) or (b.toLong() and 0xff) }
        val mask = if (b1 and 0x80 != 0) readN(input, 4) else null
        val payload = readN(input, length.toInt())
        if (mask != null) for (i in payload.indices) payload[i] = (payload[i].toInt() xor mask[i % 4].toInt()).toByte()
        return (b0 and 0x0f) to payload
    }

    private fun readN(input: InputStream, n: Int): ByteArray {
        val buf = ByteArray(n)
        var off = 0
        while (off < n) {
            val r = input.read(buf, off, n - off)
            if (r < 0) throw IOException("connection ended")
            off += r
        }
        return buf
    }

    /** The request line and headers, or null when the connection ends first. */
    private fun readHead(input: InputStream): List<String>? {
        val bytes = ByteArrayOutputStream()
        while (true) {
            val b = input.read()
            if (b < 0) return null
            bytes.write(b)
            val s = bytes.size()
            if (s >= 4 && bytes.toByteArray().let { it[s - 4] == '\r'.code.toByte() && it[s - 3] == '\n'.code.toByte() && it[s - 2] == '\r'.code.toByte() && it[s - 1] == '\n'.code.toByte() }) {
                return String(bytes.toByteArray(), Charsets.ISO_8859_1).split("\r\n").filter { it.isNotEmpty() }
            }
        }
    }
}

/**
 * Run in a child JVM by KilnRuntimeTest: a client makes a call and holds a
 * subscription open (OkHttp's dispatcher threads are not daemon threads),
 * then closes. It prints "closed cleanly" and returns when the subscription
 * ended normally, calls after close throw KilnException.Closed and no
 * thread but main is left that would keep the JVM alive; otherwise it
 * prints what is wrong and exits with 1.
 */
object KilnCloseProbe {
    @JvmStatic
    fun main(args: Array<String>) {
        val problems = mutableListOf<String>()
        KilnTestServer().use { server ->
            val kiln = KilnClient(server.url)
            runBlocking {
                kiln.auth.viewer()
                val first = CompletableDeferred<Unit>()
                val ended = CompletableDeferred<Throwable?>()
                val job = launch {
                    try {
                        kiln.subscriptions.subscribeData("subscription { n }", JsonObject(emptyMap()), JsonObject.serializer()).collect { first.complete(Unit) }
                        ended.complete(null)
                    } catch (e: Throwable) {
                        ended.complete(e)
                    }
                }
                withTimeout(60_000) { first.await() }
                kiln.close()
                val error = withTimeout(60_000) { ended.await() }
                job.join()
                if (error != null) problems += "the subscription ended with $error, not normally"
                try {
                    kiln.auth.viewer()
                    problems += "a call after close() did not throw"
                } catch (e: KilnException.Closed) {
                    // as documented
                }
                try {
                    kiln.subscriptions.subscribeData("subscription { n }", JsonObject(emptyMap()), JsonObject.serializer()).collect {}
                    problems += "a subscription after close() did not throw"
                } catch (e: KilnException.Closed) {
                    // as documented
                }
            }
        }
        // Threads that would keep the JVM alive: wait for each to end, within a bound.
        val deadline = System.nanoTime() + 30_000_000_000L
        val me = Thread.currentThread()
        var left: List<Thread>
        while (true) {
            left = Thread.getAllStackTraces().keys.filter { it.isAlive && !it.isDaemon && it !== me && it.name != "DestroyJavaVM" }
            val wait = deadline - System.nanoTime()
            if (left.isEmpty() || wait <= 0) break
            left.first().join(maxOf(1L, minOf(wait / 1_000_000, 200L)))
        }
        if (left.isNotEmpty()) problems += "threads still running after close(): " + left.joinToString { it.name }
        if (problems.isNotEmpty()) {
            System.err.println(problems.joinToString("\n"))
            System.exit(1)
        }
        println("closed cleanly")
    }
}
