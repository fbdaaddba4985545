// ethers.js v6, unmodified, against the simulator: what a JavaScript client does at start
// (chain id, head, the last 8 blocks, a log range) over HTTP, then live blocks and logs over
// WebSocket subscriptions. Prints one JSON line with what it saw; exits non-zero on any failure.
//
//   node ethers_client.mjs '{"http": URL, "ws": URL, "addresses": [..], "topics": [..],
//                            "timeout_s": 60}'
//
// ethers is loaded from ETHERS_MODULES (a node_modules directory; `make ethers` installs the
// pinned version into .tools/node_modules).
import { createRequire } from "node:module";
import { join } from "node:path";

const config = JSON.parse(process.argv[2] ?? "{}");
const timeoutS = config.timeout_s ?? 60;
const LIVE_BLOCKS = 3;

function fail(message) {
    process.stderr.write(`ethers_client: ${message}\n`);
    process.exit(1);
}

const timer = setTimeout(() => fail(`timed out after ${timeoutS} s`), timeoutS * 1000);

const modules = process.env.ETHERS_MODULES;
if (!modules) fail("set ETHERS_MODULES to the node_modules directory holding ethers");
const { ethers } = createRequire(join(modules, "noop.js"))("ethers");

// REFERENCE.md: the two OrderFilled layouts (topic0 differs)
const ABI = [
    "event OrderFilled(bytes32 indexed orderHash, address indexed maker, address indexed taker, "
        + "uint256 makerAssetId, uint256 takerAssetId, uint256 makerAmountFilled, "
        + "uint256 takerAmountFilled, uint256 fee)",
    "event OrderFilled(bytes32 indexed orderHash, address indexed maker, address indexed taker, "
        + "uint8 side, uint256 tokenId, uint256 makerAmountFilled, uint256 takerAmountFilled, "
        + "uint256 fee, bytes32 builder, bytes32 metadata)",
].map((sig) => new ethers.Interface([sig]));

function decode(log) {
    for (const iface of ABI) {
        const parsed = iface.parseLog({ topics: log.topics, data: log.data });
        if (parsed) {
            return {
                topic0: log.topics[0], address: log.address, blockNumber: log.blockNumber,
                blockHash: log.blockHash, transactionHash: log.transactionHash,
                index: log.index, removed: log.removed, name: parsed.name,
                signature: parsed.signature, maker: parsed.args.maker, taker: parsed.args.taker,
                makerAmountFilled: parsed.args.makerAmountFilled.toString(),
            };
        }
    }
    throw new Error(`no OrderFilled ABI decodes topic0 ${log.topics[0]}`);
}

const brief = (b) => ({
    number: b.number, hash: b.hash, parentHash: b.parentHash, timestamp: b.timestamp,
    transactions: b.transactions.length, baseFeePerGas: b.baseFeePerGas?.toString() ?? null,
});

async function overHttp(filter) {
    const provider = new ethers.JsonRpcProvider(config.http, undefined, { staticNetwork: true });
    try {
        const network = await provider.getNetwork();
        const head = await provider.getBlockNumber();
        // a client's look-back at start: the head and the 7 before it, requested together
        // (ethers batches concurrent calls into one JSON-RPC batch)
        const numbers = Array.from({ length: 8 }, (_, i) => head - 7 + i);
        const blocks = await Promise.all(numbers.map((n) => provider.getBlock(n)));
        if (blocks.some((b) => b == null)) throw new Error("a block of the look-back is null");
        const headBlock = await provider.getBlock(head);
        const earliest = await provider.getBlock(head - 7);
        const range = { fromBlock: head - 7, toBlock: head };
        const logs = await provider.getLogs({ ...filter, ...range });
        if (logs.length === 0) throw new Error(`getLogs ${head - 7}..${head}: no OrderFilled`);
        return {
            chainId: Number(network.chainId), networkName: network.name, head,
            headBlock: brief(headBlock), earliest: brief(earliest), blocks: blocks.map(brief),
            getLogs: { ...range, count: logs.length, first: decode(logs[0]),
                       decoded: logs.map(decode).length },
        };
    } finally {
        provider.destroy();
    }
}

async function overWebSocket(filter) {
    const provider = new ethers.WebSocketProvider(config.ws);
    const liveBlocks = [];
    const liveLogs = [];
    let decodeError = null;
    try {
        // the network first, as a careful ethers user does: ethers v6 throws "network is
        // not available yet" (NETWORK_ERROR) from its socket subscriber when a subscription's
        // first notification arrives before its own eth_chainId answer (a race on a loaded
        // machine, whatever the node: the first final CI run of stop 34 met it once)
        await provider.getNetwork();
        await new Promise((resolve, reject) => {
            const check = () => {
                if (decodeError) reject(decodeError);
                else if (liveBlocks.length >= LIVE_BLOCKS && liveLogs.length >= 1) resolve();
            };
            provider.on("error", reject).catch(reject);
            provider.on("block", (n) => { liveBlocks.push(n); check(); }).catch(reject);
            provider.on(filter, (log) => {
                try {
                    liveLogs.push(decode(log));
                } catch (error) {
                    decodeError = error;
                }
                check();
            }).catch(reject);
        });
        const chainId = Number((await provider.getNetwork()).chainId);
        return { wsChainId: chainId, liveBlocks, liveLogs: liveLogs.slice(0, 5),
                 liveLogCount: liveLogs.length };
    } finally {
        await provider.destroy();
    }
}

try {
    const filter = { address: config.addresses, topics: [config.topics] };
    const http = await overHttp(filter);
    const ws = await overWebSocket(filter);
    clearTimeout(timer);
    process.stdout.write(JSON.stringify({ ethers: ethers.version, ...http, ...ws }) + "\n");
} catch (error) {
    fail(error?.stack ?? String(error));
}
