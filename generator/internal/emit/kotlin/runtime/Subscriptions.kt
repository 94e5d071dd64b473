package io.kiln.sdk

import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.withTimeoutOrNull
import kotlinx.serialization.KSerializer
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.buildJsonObject
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.put
import okhttp3.Request
import okhttp3.Response
import okhttp3.WebSocket
import okhttp3.WebSocketListener

private sealed class WsEvent {
    object Open : WsEvent()
    class Text(val text: String) : WsEvent()
    class Closed(val code: Int, val reason: String) : WsEvent()
    class Failure(val error: Throwable) : WsEvent()
    /** [KilnClient.close] ran. */
    object ClientClosed : WsEvent()
}

/** One open subscription socket, and the latch its listener opens when it ended. */
private class SubscriptionSocket(val ws: WebSocket, val events: Channel<WsEvent>, val ended: CountDownLatch)

/**
 * Subscriptions over graphql-transport-ws. Each subscription has its own
 * connection; when it drops (network, server restart, expired token) the
 * flow reconnects with backoff, signs the connection with a fresh access
 * token and subscribes again. Events published while disconnected are not
 * replayed: refetch with a list call after [onReconnect] if they matter.
 *
 * [KilnClient.close] closes every subscription socket (close code 1000) and
 * ends every subscription flow normally: a `collect` in progress returns
 * without an exception. Subscribing after close throws [KilnException.Closed].
 */
class Subscriptions internal constructor(private val t: KilnTransport) {
    /** Called after a connection is re-established (not for the first one). */
    @Volatile var onReconnect: (() -> Unit)? = null

    /** Maximum delay between reconnect attempts. */
    @Volatile var maxBackoffMillis: Long = 30_000

    private val live: MutableSet<SubscriptionSocket> = ConcurrentHashMap.newKeySet()

    /**
     * Closes every open subscription socket: a close frame first, then, for
     * the sockets the server has not answered within [graceMillis], at once.
     * The flows end normally.
     */
    internal fun closeAll(graceMillis: Long = 2_000) {
        val sockets = live.toList()
        for (s in sockets) {
            s.events.trySend(WsEvent.ClientClosed)
            s.ws.close(1000, "client closed")
        }
        val deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(graceMillis)
        for (s in sockets) {
            val left = deadline - System.nanoTime()
            if (left <= 0 || !s.ended.await(left, TimeUnit.NANOSECONDS)) s.ws.cancel()
        }
    }

    /** Subscribes to [document] and decodes `data[field]` of every event. */
    fun <T> subscribe(document: String, variables: JsonObject, field: String, serializer: KSerializer<T>): Flow<T> =
        raw(document, variables) { decodeField(it, field, serializer) }

    /** Subscribes to [document] and decodes the whole `data` of every event. */
    fun <T> subscribeData(document: String, variables: JsonObject, serializer: KSerializer<T>): Flow<T> =
        raw(document, variables) {
            try {
                KilnJson.decodeFromJsonElement(serializer, it)
            } catch (e: Exception) {
                throw KilnException.Decoding("cannot decode event: ${e.message}", e)
            }
        }

    private fun <T> raw(document: String, variables: JsonObject, decode: (JsonObject) -> T): Flow<T> = flow {
        t.checkOpen()
        var attempt = 0
        var connectedBefore = false
        while (true) {
            if (t.isClosed) return@flow
            val events = Channel<WsEvent>(Channel.UNLIMITED)
            val token = try {
                t.accessToken()
            } catch (e: KilnException.Closed) {
                return@flow
            }
            val ended = CountDownLatch(1)
            val request = Request.Builder().url(t.webSocketUrl).header("Sec-WebSocket-Protocol", "graphql-transport-ws").build()
            val ws = t.httpClient.newWebSocket(request, object : WebSocketListener() {
                override fun onOpen(webSocket: WebSocket, response: Response) { events.trySend(WsEvent.Open) }
                override fun onMessage(webSocket: WebSocket, text: String) { events.trySend(WsEvent.Text(text)) }
                override fun onClosing(webSocket: WebSocket, code: Int, reason: String) {
                    events.trySend(WsEvent.Closed(code, reason)); webSocket.close(1000, null)
                }
                override fun onClosed(webSocket: WebSocket, code: Int, reason: String) {
                    events.trySend(WsEvent.Closed(code, reason)); ended.countDown()
                }
                override fun onFailure(webSocket: WebSocket, t: Throwable, response: Response?) {
                    events.trySend(WsEvent.Failure(t)); ended.countDown()
                }
            })
            val socket = SubscriptionSocket(ws, events, ended)
            live.add(socket)
            // close() may have taken its list of sockets before this one.
            if (t.isClosed) {
                live.remove(socket)
                ws.cancel()
                return@flow
            }
            var authRejected = false
            try {
                loop@ for (ev in events) {
                    when (ev) {
                        is WsEvent.Open -> ws.send(buildJsonObject {
                            put("type", "connection_init")
                            put("payload", buildJsonObject {
                                if (token != null) put("Authorization", "Bearer $token")
                                for ((k, v) in t.config.headers) put(k, v)
                            })
                        }.toString())
                        is WsEvent.Text -> {
                            val msg = KilnJson.parseToJsonElement(ev.text).jsonObject
                            when ((msg["type"] as? JsonPrimitive)?.content) {
                                "connection_ack" -> {
                                    if (connectedBefore) onReconnect?.invoke()
                                    connectedBefore = true
                                    attempt = 0
                                    ws.send(buildJsonObject {
                                        put("id", "1")
                                        put("type", "subscribe")
                                        put("payload", buildJsonObject { put("query", document); put("variables", variables) })
                                    }.toString())
                                }
                                "ping" -> ws.send("{\"type\":\"pong\"}")
                                "next" -> {
                                    val payload = msg["payload"]!!.jsonObject
                                    val errors = payload["errors"]
                                    if (errors is JsonArray && errors.isNotEmpty()) throw KilnTransport.errorFrom(errors[0].jsonObject)
                                    emit(decode(payload["data"]!!.jsonObject))
                                }
                                "error" -> {
                                    val errors = msg["payload"] as? JsonArray
                                    throw if (errors != null && errors.isNotEmpty()) KilnTransport.errorFrom(errors[0].jsonObject)
                                    else KilnException.Server(null, "subscription error")
                                }
                                "complete" -> return@flow
                            }
                        }
                        is WsEvent.Closed -> {
                            authRejected = ev.code == 4401 || ev.code == 4403
                            break@loop
                        }
                        is WsEvent.Failure -> break@loop
                        is WsEvent.ClientClosed -> return@flow
                    }
                }
            } finally {
                live.remove(socket)
                ws.close(1000, null)
                events.close()
            }
            if (t.isClosed) return@flow
            if (authRejected && token != null) {
                val fresh = try {
                    t.refresh(stale = token)
                } catch (e: KilnException.Closed) {
                    return@flow
                }
                fresh ?: throw KilnException.Unauthenticated("the session ended")
            }
            // The backoff, cut short by close().
            withTimeoutOrNull(minOf(maxBackoffMillis, 250L shl minOf(attempt, 7))) { t.closing.await() }
            attempt++
        }
    }
}
