/**
 * The frames nodes, clients and the manager exchange over one TCP port per node. The first frame
 * on a connection must be a `hello` that proves who is speaking (hello-auth.ts); a peer
 * connection then carries protocol messages (`msg` for its own, `fwd` for another replica's it
 * relays), a client connection carries requests for the ids it proved one way and replies the
 * other, and an admin connection asks for status. This module checks shapes only; the node checks
 * hellos, and every message's MAC against its sender (inbound.ts), before the protocol sees it.
 */
import type { ClientReply, ClientRequest, Message, NodeId } from '../protocol.ts';
import type { TraceStatus } from './trace-output.ts';

/** Fields every hello carries; see hello-auth.ts for what the tags cover. */
interface HelloBase {
  readonly t: 'hello';
  /** The receiving node: a hello for another node is refused. */
  readonly to: NodeId;
  /** The sender's clock, ms since the epoch. */
  readonly ts: number;
  readonly nonce: string;
}
export interface PeerHello extends HelloBase {
  readonly role: 'peer';
  readonly node: NodeId;
  readonly mac: string;
}
export interface ClientHello extends HelloBase {
  readonly role: 'client';
  /** Every client id whose replies this connection should carry... */
  readonly clients: readonly number[];
  /** ...each with its own tag, under that client's key, in the same order. */
  readonly macs: readonly string[];
}
export interface AdminHello extends HelloBase {
  readonly role: 'admin';
  readonly mac: string;
}
export type HelloFrame = PeerHello | ClientHello | AdminHello;

/** Why a connection was refused at its hello (the node counts each). */
export type HelloRejectReason =
  /** The first frame is not a hello. */
  | 'not_hello'
  /** A hello with missing or mistyped fields. */
  | 'malformed'
  /** The first frame announces more than unauthenticatedFrameBytesMax. */
  | 'frame_too_large'
  /** The first frame is not valid JSON. */
  | 'bad_frame'
  | 'bad_mac'
  /** Addressed to another node. */
  | 'wrong_node'
  /** Its timestamp is further than helloFreshnessMs from this node's clock. */
  | 'stale'
  /** Its nonce was already used. */
  | 'replayed'
  /** The nonce memory is full of fresh nonces (helloNoncesMax); refused rather than unchecked. */
  | 'replay_cache_full'
  | 'too_many_clients'
  /** A peer id that is not another replica of this cluster. */
  | 'unknown_identity'
  /** Nothing authenticated within helloTimeoutMs. */
  | 'timeout';

export interface MessageFrame {
  readonly t: 'msg';
  readonly m: Message;
}
/** A message signed by another replica, relayed as is (PBFT forwards NEW-VIEW and checkpoint
 * votes): its MAC is checked against its own sender, not against the connection's peer. */
export interface RelayFrame {
  readonly t: 'fwd';
  readonly m: Message;
}
export interface RequestFrame {
  readonly t: 'req';
  readonly r: ClientRequest;
}
export interface ReplyFrame {
  readonly t: 'reply';
  readonly r: ClientReply;
}
export interface StatusRequestFrame {
  readonly t: 'status';
}

/** What a node's inbound side counts (inbound.ts); part of NodeStatus. */
export interface InboundStatus {
  /** Accepted connections open now, by what they proved to be. */
  readonly connectionsOpen: number;
  readonly connectionsOpenByRole: { readonly unauthenticated: number; readonly peer: number; readonly client: number; readonly admin: number };
  /** Refused at accept: connectionsMax or unauthenticatedConnectionsMax reached. */
  readonly connectionsRejected: number;
  /** Closed because their buffered bytes would have taken the total past inboundBytesMax. */
  readonly connectionsClosedMemory: number;
  /** Peer connections closed after authFailuresMax messages failing verification. */
  readonly connectionsClosedAuth: number;
  /** Connections refused at their hello, and why. */
  readonly hellosRejected: number;
  readonly hellosRejectedByReason: Readonly<Partial<Record<HelloRejectReason, number>>>;
  /** Peer messages dropped for a bad MAC or a sender other than the connection's peer. */
  readonly messagesAuthFailed: number;
  /** Bytes held in partial frames across connections now, and the most ever held. */
  readonly inboundBufferedBytes: number;
  readonly inboundBufferedBytesPeak: number;
}

/** What a node says about itself; the manager's readiness check and the tests read it. */
/** The trace fields (records, drops, spool, gaps) are TraceStatus, defined with the trace buffer. */
export interface NodeStatus extends InboundStatus, TraceStatus {
  readonly node: NodeId;
  readonly protocol: string;
  readonly pid: number;
  readonly port: number;
  /** Outbound peer links currently connected (n - 1 when the mesh is complete). */
  readonly connectedPeers: number;
  readonly executed: number;
  readonly stateDigest: string;
  readonly shadowDigest: string;
  readonly digestsMatch: boolean;
  readonly messagesSent: number;
  readonly messagesReceived: number;
  readonly messagesDropped: number;
  readonly framesRejected: number;
  /** Socket write calls so far (peer links and accepted connections): each is a syscall, so
   * frames coalesced per write is the transport's main cost lever. */
  readonly socketWrites: number;
}
export interface StatusFrame {
  readonly t: 'status_ok';
  readonly s: NodeStatus;
}

export type Frame = HelloFrame | MessageFrame | RelayFrame | RequestFrame | ReplyFrame | StatusRequestFrame | StatusFrame;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

export function isMessage(v: unknown): v is Message {
  return isObject(v) && typeof v.type === 'string' && isInt(v.from);
}

export function isClientRequest(v: unknown): v is ClientRequest {
  if (!isObject(v) || !isInt(v.clientId) || !isInt(v.requestId) || !isObject(v.op)) return false;
  const op = v.op;
  if (typeof op.key !== 'string') return false;
  if (op.kind === 'read') return true;
  if (op.kind === 'write') return typeof op.value === 'string';
  if (op.kind === 'cas') return typeof op.value === 'string' && (op.expected === null || typeof op.expected === 'string');
  return false;
}

export function isClientReply(v: unknown): v is ClientReply {
  if (!isObject(v) || !isInt(v.clientId) || !isInt(v.requestId) || !isInt(v.replica) || !isInt(v.view)) return false;
  const result = v.result;
  return isObject(result) && typeof result.applied === 'boolean' && (result.value === null || typeof result.value === 'string');
}

/** Returns the frame if its shape is one we know, else null (the caller counts and drops it). */
export function parseFrame(v: unknown): Frame | null {
  if (!isObject(v)) return null;
  switch (v.t) {
    case 'msg':
      return isMessage(v.m) ? (v as unknown as MessageFrame) : null;
    case 'fwd':
      return isMessage(v.m) ? (v as unknown as RelayFrame) : null;
    case 'req':
      return isClientRequest(v.r) ? (v as unknown as RequestFrame) : null;
    case 'reply':
      return isClientReply(v.r) ? (v as unknown as ReplyFrame) : null;
    case 'status':
      return { t: 'status' };
    case 'status_ok':
      return isObject(v.s) && isInt(v.s.node) ? (v as unknown as StatusFrame) : null;
    case 'hello': {
      // Shape only; whether it proves anything is hello-auth.ts's question.
      if (!isInt(v.to) || !isInt(v.ts) || typeof v.nonce !== 'string') return null;
      if (v.role === 'peer' && isInt(v.node) && typeof v.mac === 'string') return v as unknown as HelloFrame;
      if (v.role === 'client' && Array.isArray(v.clients) && v.clients.every(isInt) && Array.isArray(v.macs) && v.macs.every((m) => typeof m === 'string')) return v as unknown as HelloFrame;
      if (v.role === 'admin' && typeof v.mac === 'string') return v as unknown as HelloFrame;
      return null;
    }
    default:
      return null;
  }
}
