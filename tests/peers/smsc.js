#!/usr/bin/env node
// An SMPP 3.4 SMSC for the integration tests, on node-smpp: binds, submits, delivery receipts and
// inbound messages, plus a small HTTP control server for the tests to look and poke.
//
//   node tests/peers/smsc.js [--port 0] [--control-port 0] [--system-id mittis] [--password secret]
//                            [--receipt-delay-ms 100]
// Port 0 picks a free one. Prints `listening <smpp port> <control port>` once both listen.
//
// Binds: bind_transceiver only; a wrong system_id gets ESME_RBINDFAIL, a wrong password
// ESME_RINVPASWD (and the connection is closed), as a real SMSC answers.
//
// Magic destinations (any other is accepted and receipted DELIVRD after the delay):
//   +15005550102  accepted, receipt UNDELIV err:001 (message_state 5)
//   +15005550103  submit_sm_resp ESME_RINVDSTADR (rejected)
//   +15005550104  the first submit to it gets ESME_RTHROTTLED, later ones are accepted
//   +15005550105  never answered: no submit_sm_resp at all
//   +15005550106  accepted, never receipted
//   +15005550107  accepted, receipt DELIVRD in the text only (no receipted_message_id/message_state TLVs)
//   +15005550108  accepted, receipt EXPIRED (message_state 3)
//
// Control server (JSON):
//   GET  /submits   every submit_sm: addresses, esm_class, data_coding, short_message/udh/text as hex,
//                   the text decoded by node-smpp's own GSM 03.38 / UCS-2 decoders, message_id, status
//   GET  /binds     every bind attempt and its command_status
//   GET  /delivers  every deliver_sm sent (receipts and inbound) and the command_status of its resp
//   GET  /state     bound sessions, enquire_links answered
//   POST /deliver   {from, to, text} or {from, to, hex, data_coding, esm_class}: an inbound deliver_sm
//   POST /pdu       {command: "deliver_sm" | "data_sm", ...fields}: any such PDU, fields (and TLVs) as node-smpp
//                   names them; a value {hex} is sent as those octets (short_message, message_payload)
//   POST /raw       {hex}: bytes written to the session as they are (a truncated or malformed PDU); its answer
//                   is the one whose sequence_number its header holds
//   GET  /pdus      every PDU sent by /pdu and /raw, with the command and command_status of its answer as
//                   node-smpp decoded them
//   POST /drop      destroys every session (a network drop)
//   POST /reset     forgets what was recorded
//
// Outbound edges (receipts and throttling; see "Outbound edges" below):
//   POST /message-ids        {next}: message ids begin again from `next` (hex), as after an SMSC restart
//   POST /receipts/options   {hold, before_answer}: hold receipts until released; or send each receipt
//                            before its submit_sm_resp (a receipt that overtakes the answer)
//   GET  /receipts/held      the message ids whose receipts are held
//   POST /receipts/release   {reverse, receipts: {message_id: {stat, err, network_error_code (hex)}}}: the held
//                            receipts, on the bound session, as they came (or reversed), with those overrides
//   POST /throttle           {to, status: ESME_RMSGQFUL|ESME_RTHROTTLED, count}: the next `count` submits to
//                            `to` (every one, without a count) are answered with that status

'use strict';

const http = require('node:http');
const { parseArgs } = require('node:util');
const smpp = require('smpp');

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.SMSC_PORT || '0' },
    'control-port': { type: 'string', default: process.env.SMSC_CONTROL_PORT || '0' },
    'system-id': { type: 'string', default: process.env.SMSC_SYSTEM_ID || 'mittis' },
    password: { type: 'string', default: process.env.SMSC_PASSWORD || 'secret' },
    'receipt-delay-ms': { type: 'string', default: process.env.SMSC_RECEIPT_DELAY_MS || '100' },
  },
});
const RECEIPT_DELAY_MS = Number(args['receipt-delay-ms']);

const MAGIC = {
  UNDELIVERED: '15005550102',
  REJECTED: '15005550103',
  THROTTLED_ONCE: '15005550104',
  NO_RESPONSE: '15005550105',
  NO_RECEIPT: '15005550106',
  TEXT_ONLY_RECEIPT: '15005550107',
  EXPIRED: '15005550108',
};
const MESSAGE_STATE = { DELIVRD: 2, EXPIRED: 3, UNDELIV: 5 };

// Keep submit_sm's short_message as the raw octets the ESME sent: the tests assert them.
delete smpp.commands.submit_sm.params.short_message.filter;

let submits = [];
let binds = [];
let delivers = [];
let pdus = [];
let enquireLinks = 0;
let nextId = 0x10000;
const throttled = new Set();
const sessions = new Set();

function decodeText(octets, dataCoding) {
  if (dataCoding === 0x08) {
    const swapped = Buffer.from(octets);
    swapped.swap16();
    return swapped.toString('utf16le');
  }
  if (dataCoding === 0x03) return octets.toString('latin1');
  return smpp.gsmCoder.decode(octets, 0x00);
}

function encodeText(text) {
  if (smpp.gsmCoder.GSM.charRegex.test(text)) {
    return { data_coding: 0x00, octets: smpp.gsmCoder.encode(text, 0x00) };
  }
  const octets = Buffer.from(text, 'utf16le');
  octets.swap16();
  return { data_coding: 0x08, octets };
}

function address(value) {
  return value.startsWith('+') ? { ton: 1, npi: 1, addr: value.slice(1) } : { ton: 0, npi: 1, addr: value };
}

function smppDate(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return pad(date.getUTCFullYear() % 100) + pad(date.getUTCMonth() + 1) + pad(date.getUTCDate())
    + pad(date.getUTCHours()) + pad(date.getUTCMinutes());
}

function boundSession(preferred) {
  if (preferred && preferred.bound && sessions.has(preferred)) return preferred;
  for (const session of sessions) if (session.bound) return session;
  return null;
}

function sendDeliver(session, fields, record) {
  const pdu = new smpp.PDU('deliver_sm', fields);
  session.send(pdu, (resp) => { record.resp_status = resp.command_status; });
  record.sequence_number = pdu.sequence_number;
  delivers.push(record);
}

function sendReceipt(submit, session, stat, withTlvs) {
  if (holdReceipt(submit, session, stat, withTlvs)) return;
  const target = boundSession(session);
  if (!target) return;
  const now = smppDate(new Date());
  const excerpt = submit.text.replace(/[^\x20-\x7e]/g, '?').slice(0, 20);
  const text = `id:${submit.message_id} sub:001 dlvrd:${stat === 'DELIVRD' ? '001' : '000'} `
    + `submit date:${now} done date:${now} stat:${stat} err:${stat === 'UNDELIV' ? '001' : '000'} text:${excerpt}`;
  const fields = {
    source_addr_ton: submit.dest_addr_ton, source_addr_npi: submit.dest_addr_npi,
    source_addr: submit.destination_addr,
    dest_addr_ton: submit.source_addr_ton, dest_addr_npi: submit.source_addr_npi,
    destination_addr: submit.source_addr,
    esm_class: 0x04, data_coding: 0x00, short_message: Buffer.from(text, 'ascii'),
  };
  if (withTlvs) {
    fields.receipted_message_id = submit.message_id;
    fields.message_state = MESSAGE_STATE[stat];
  }
  sendDeliver(target, fields, { kind: 'receipt', message_id: submit.message_id, stat, text, resp_status: null });
}

function onSubmit(session, pdu) {
  if (!session.bound) {
    session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
    return;
  }
  const octets = pdu.short_message || Buffer.alloc(0);
  let udh = null;
  let body = octets;
  if ((pdu.esm_class & 0x40) && octets.length) {
    udh = octets.subarray(0, octets[0] + 1);
    body = octets.subarray(octets[0] + 1);
  }
  const submit = {
    sequence_number: pdu.sequence_number,
    service_type: pdu.service_type,
    source_addr_ton: pdu.source_addr_ton, source_addr_npi: pdu.source_addr_npi, source_addr: pdu.source_addr,
    dest_addr_ton: pdu.dest_addr_ton, dest_addr_npi: pdu.dest_addr_npi, destination_addr: pdu.destination_addr,
    esm_class: pdu.esm_class, data_coding: pdu.data_coding, registered_delivery: pdu.registered_delivery,
    short_message: octets.toString('hex'), udh: udh && udh.toString('hex'), text_hex: body.toString('hex'),
    text: decodeText(body, pdu.data_coding), message_id: null, command_status: null,
    at: Date.now(),
  };
  submits.push(submit);
  const to = pdu.destination_addr;
  if (to === MAGIC.NO_RESPONSE) return;
  if (throttleSubmit(session, pdu, submit)) return;
  if (to === MAGIC.REJECTED || (to === MAGIC.THROTTLED_ONCE && !throttled.has(to))) {
    if (to === MAGIC.THROTTLED_ONCE) throttled.add(to);
    submit.command_status = to === MAGIC.REJECTED ? smpp.ESME_RINVDSTADR : smpp.ESME_RTHROTTLED;
    session.send(pdu.response({ command_status: submit.command_status }));
    return;
  }
  submit.message_id = (nextId++).toString(16).toUpperCase().padStart(10, '0');
  submit.command_status = 0;
  if (receiptBeforeAnswer(session, pdu, submit)) return;
  session.send(pdu.response({ message_id: submit.message_id }));
  if (to === MAGIC.NO_RECEIPT || !(pdu.registered_delivery & 0x03)) return;
  const stat = to === MAGIC.UNDELIVERED ? 'UNDELIV' : to === MAGIC.EXPIRED ? 'EXPIRED' : 'DELIVRD';
  setTimeout(() => sendReceipt(submit, session, stat, to !== MAGIC.TEXT_ONLY_RECEIPT), RECEIPT_DELAY_MS);
}

// --- Outbound edges: receipts held, reordered or overridden, ids begun again, destinations throttled ---
let receiptOptions = { hold: false, before_answer: false };
let heldReceipts = [];
let throttleRules = new Map(); // destination_addr -> { status, left }

function resetOutboundEdges() {
  receiptOptions = { hold: false, before_answer: false };
  heldReceipts = [];
  throttleRules = new Map();
}

function holdReceipt(submit, session, stat, withTlvs) {
  if (!receiptOptions.hold) return false;
  heldReceipts.push({ submit, session, stat, withTlvs });
  return true;
}

function throttleSubmit(session, pdu, submit) {
  const rule = throttleRules.get(pdu.destination_addr);
  if (!rule || rule.left === 0) return false;
  if (rule.left > 0) rule.left -= 1;
  submit.command_status = smpp[rule.status];
  session.send(pdu.response({ command_status: submit.command_status }));
  return true;
}

// A receipt with the stat, err and network_error_code asked for, recorded with the TLV as sent.
function sendCustomReceipt(submit, session, { stat = 'DELIVRD', err, network_error_code: networkErrorCode }) {
  const target = boundSession(session);
  if (!target) return;
  const now = smppDate(new Date());
  const errText = err || (stat === 'DELIVRD' ? '000' : '001');
  const text = `id:${submit.message_id} sub:001 dlvrd:${stat === 'DELIVRD' ? '001' : '000'} `
    + `submit date:${now} done date:${now} stat:${stat} err:${errText} text:`;
  const fields = {
    source_addr_ton: submit.dest_addr_ton, source_addr_npi: submit.dest_addr_npi,
    source_addr: submit.destination_addr,
    dest_addr_ton: submit.source_addr_ton, dest_addr_npi: submit.source_addr_npi,
    destination_addr: submit.source_addr,
    esm_class: 0x04, data_coding: 0x00, short_message: Buffer.from(text, 'ascii'),
    receipted_message_id: submit.message_id, message_state: MESSAGE_STATE[stat] || 2,
  };
  if (networkErrorCode) fields.network_error_code = Buffer.from(networkErrorCode, 'hex');
  sendDeliver(target, fields, {
    kind: 'receipt', message_id: submit.message_id, stat, text, network_error_code: networkErrorCode || null,
    resp_status: null, at: Date.now(),
  });
}

function receiptBeforeAnswer(session, pdu, submit) {
  if (!receiptOptions.before_answer || !(pdu.registered_delivery & 0x03)) return false;
  sendCustomReceipt(submit, session, { stat: 'DELIVRD' });
  submit.answered_at = Date.now();
  session.send(pdu.response({ message_id: submit.message_id }));
  return true;
}

async function outboundEdgeControl(route, request) {
  if (route === 'POST /message-ids') {
    const body = await readJson(request);
    nextId = parseInt(body.next, 16);
    return { next: nextId.toString(16).toUpperCase().padStart(10, '0') };
  }
  if (route === 'POST /receipts/options') {
    receiptOptions = { ...receiptOptions, ...(await readJson(request)) };
    return receiptOptions;
  }
  if (route === 'GET /receipts/held') return heldReceipts.map((receipt) => receipt.submit.message_id);
  if (route === 'POST /receipts/release') {
    const body = await readJson(request);
    const overrides = body.receipts || {};
    const held = body.reverse ? heldReceipts.reverse() : heldReceipts;
    heldReceipts = [];
    receiptOptions.hold = false;
    for (const { submit, session, stat, withTlvs } of held) {
      const override = overrides[submit.message_id];
      if (override) sendCustomReceipt(submit, session, override);
      else sendReceipt(submit, session, stat, withTlvs);
    }
    return { released: held.map((receipt) => receipt.submit.message_id) };
  }
  if (route === 'POST /throttle') {
    const body = await readJson(request);
    throttleRules.set(address(body.to).addr, { status: body.status, left: body.count ?? -1 });
    return { throttled: body.to };
  }
  return null;
}

const server = smpp.createServer((session) => {
  sessions.add(session);
  session.bound = false;
  session.on('error', () => {}); // the client went away; 'close' follows
  session.on('close', () => sessions.delete(session));
  session.on('bind_transceiver', (pdu) => {
    let status = 0;
    if (pdu.system_id !== args['system-id']) status = smpp.ESME_RBINDFAIL;
    else if (pdu.password !== args.password) status = smpp.ESME_RINVPASWD;
    binds.push({ system_id: pdu.system_id, system_type: pdu.system_type, command_status: status, at: Date.now() });
    if (status) {
      session.send(pdu.response({ command_status: status }), () => session.close());
      return;
    }
    session.bound = true;
    session.send(pdu.response({ system_id: 'mittis-smsc' }));
  });
  for (const command of ['bind_transmitter', 'bind_receiver']) {
    session.on(command, (pdu) => {
      binds.push({ system_id: pdu.system_id, command_status: smpp.ESME_RBINDFAIL, at: Date.now() });
      session.send(pdu.response({ command_status: smpp.ESME_RBINDFAIL }), () => session.close());
    });
  }
  session.on('enquire_link', (pdu) => {
    enquireLinks += 1;
    session.send(pdu.response());
  });
  session.on('unbind', (pdu) => {
    session.bound = false;
    session.send(pdu.response(), () => session.close());
  });
  session.on('submit_sm', (pdu) => onSubmit(session, pdu));
});

// Any PDU an SMSC may send, and any bytes: for the tests of what Mittis answers to each.
function withOctets(fields) {
  const decoded = {};
  for (const [key, value] of Object.entries(fields)) {
    decoded[key] = value && typeof value === 'object' && 'hex' in value ? Buffer.from(value.hex, 'hex') : value;
  }
  return decoded;
}

function recordAnswer(session, sequence, record) {
  const listener = (pdu) => {
    if (!pdu.isResponse() || pdu.sequence_number !== sequence) return;
    session.removeListener('pdu', listener);
    record.resp_command = pdu.command;
    record.resp_status = pdu.command_status;
  };
  session.on('pdu', listener);
}

function sendPdu(session, body) {
  const { command, ...fields } = body;
  const pdu = new smpp.PDU(command, withOctets(fields));
  const record = { kind: 'pdu', command, fields, resp_command: null, resp_status: null };
  session.send(pdu);
  record.sequence_number = pdu.sequence_number;
  recordAnswer(session, pdu.sequence_number, record);
  pdus.push(record);
  return record;
}

function sendRaw(session, hex) {
  const octets = Buffer.from(hex, 'hex');
  const record = { kind: 'raw', hex, sequence_number: octets.readUInt32BE(12), resp_command: null, resp_status: null };
  recordAnswer(session, record.sequence_number, record);
  session.socket.write(octets);
  pdus.push(record);
  return record;
}

function readJson(request) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', () => {
      try {
        resolve(chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {});
      } catch (error) {
        reject(error);
      }
    });
  });
}

const control = http.createServer(async (request, response) => {
  const reply = (status, body) => {
    response.writeHead(status, { 'Content-Type': 'application/json' });
    response.end(JSON.stringify(body));
  };
  const route = `${request.method} ${request.url}`;
  try {
    if (route === 'GET /submits') return reply(200, submits);
    if (route === 'GET /binds') return reply(200, binds);
    if (route === 'GET /delivers') return reply(200, delivers);
    if (route === 'GET /state') {
      return reply(200, { bound: [...sessions].filter((s) => s.bound).length, enquire_links: enquireLinks });
    }
    if (route === 'POST /reset') {
      submits = []; binds = []; delivers = []; pdus = []; enquireLinks = 0; throttled.clear();
      resetOutboundEdges();
      return reply(200, {});
    }
    if (route === 'POST /drop') {
      const dropped = sessions.size;
      for (const session of sessions) session.destroy();
      return reply(200, { dropped });
    }
    if (route === 'POST /deliver') {
      const body = await readJson(request);
      const session = boundSession(null);
      if (!session) return reply(409, { error: 'no bound session' });
      const encoded = body.hex !== undefined
        ? { data_coding: body.data_coding || 0, octets: Buffer.from(body.hex, 'hex') }
        : encodeText(body.text);
      const from = address(body.from);
      const to = address(body.to);
      const record = { kind: 'inbound', from: body.from, to: body.to, resp_status: null };
      sendDeliver(session, {
        source_addr_ton: from.ton, source_addr_npi: from.npi, source_addr: from.addr,
        dest_addr_ton: to.ton, dest_addr_npi: to.npi, destination_addr: to.addr,
        esm_class: body.esm_class || 0, data_coding: encoded.data_coding, short_message: encoded.octets,
      }, record);
      return reply(200, { sequence_number: record.sequence_number });
    }
    if (route === 'GET /pdus') return reply(200, pdus);
    if (route === 'POST /pdu' || route === 'POST /raw') {
      const body = await readJson(request);
      const session = boundSession(null);
      if (!session) return reply(409, { error: 'no bound session' });
      const record = route === 'POST /pdu' ? sendPdu(session, body) : sendRaw(session, body.hex);
      return reply(200, { sequence_number: record.sequence_number });
    }
    const edge = await outboundEdgeControl(route, request);
    if (edge) return reply(200, edge);
    return reply(404, { error: `no route ${route}` });
  } catch (error) {
    return reply(500, { error: String(error) });
  }
});

server.listen(Number(args.port), '127.0.0.1', () => {
  control.listen(Number(args['control-port']), '127.0.0.1', () => {
    process.stdout.write(`listening ${server.address().port} ${control.address().port}\n`);
  });
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
