// A C# client of libtcpEvent.so written the way RealTimeKql's EbpfSession
// is: the same struct, the same two [DllImport("event")] declarations, and
// the same flow. setupBPF() gets the BCC program text as a char[] on a
// thread of its own (it blocks, serving, until cleanup()), the reader sleeps
// 3 s, then loops on DequeuePerfEvent(). Each event is printed as the
// original documentation's C example prints it.
//
//   mcs -out:TcpEventClient.exe TcpEventClient.cs
//   sudo env LD_LIBRARY_PATH=/opt/RealTimeKql/lib mono TcpEventClient.exe [MAX_EVENTS]
//
// "event" is libevent.so: `make install-lib` puts that name next to
// libtcpEvent.so. Mono looks in the assembly's directory first, then where
// dlopen() looks (LD_LIBRARY_PATH, the ld.so cache).
//
// It stops after MAX_EVENTS events if given, else on Ctrl-C at a terminal:
// then it calls cleanup(), which makes setupBPF() return, and exits with 0
// if setupBPF() returned 0.
using System;
using System.Runtime.InteropServices;
using System.Threading;

namespace TcpEventExample
{
    // struct tcp_event_t: packed, 430 bytes; the names are EbpfSession's.
    [StructLayout(LayoutKind.Sequential, Pack = 1, CharSet = CharSet.Ansi)]
    internal struct tcpEvent
    {
        public UInt64 EventTime;
        public UInt32 pid;
        public UInt32 UserId;
        public UInt64 rx_b;
        public UInt64 tx_b;
        public UInt32 SentPkts;     // tcpi_segs_out
        public UInt32 RecvPkts;     // tcpi_segs_in
        public UInt16 Type;         // family: 2, 10; 0 means "no event"
        public UInt16 SPT;
        public UInt16 DPT;
        [MarshalAs(UnmanagedType.ByValTStr, SizeConst = 128)] public string Command;
        [MarshalAs(UnmanagedType.ByValTStr, SizeConst = 128)] public string SADDR;
        [MarshalAs(UnmanagedType.ByValTStr, SizeConst = 128)] public string DADDR;
    }

    internal static class TcpEventClient
    {
        [DllImport("event")]
        static extern int setupBPF(char[] ourQueryCharArray);

        [DllImport("event")]
        static extern tcpEvent DequeuePerfEvent();

        // Not in EbpfSession: without it the setupBPF thread never ends.
        [DllImport("event")]
        static extern void cleanup();

        // The program text the original library compiled with BCC. Ours
        // does not compile it (one line on stderr says so): it loads its
        // built-in CO-RE program, which produces the same events.
        const string Source = @"
#include <uapi/linux/ptrace.h>
#include <net/sock.h>
#include <net/tcp_states.h>
#include <bcc/proto.h>

struct tcp_event_t {
    u64 ts_ns; u32 pid; u32 uid; u64 rx_b; u64 tx_b;
    u32 segs_out; u32 segs_in; u16 family; u16 sport; u16 dport;
    char task[TASK_COMM_LEN];
    unsigned __int128 saddr; unsigned __int128 daddr;
};
BPF_PERF_OUTPUT(tcp_events);

int kprobe__tcp_set_state(struct pt_regs *ctx, struct sock *sk, int state)
{
    if (state != TCP_CLOSE)
        return 0;
    struct tcp_sock *tp = (struct tcp_sock *)sk;
    struct tcp_event_t event = {};
    u16 family = sk->__sk_common.skc_family;
    event.ts_ns = bpf_ktime_get_ns();
    event.pid = bpf_get_current_pid_tgid() >> 32;
    event.uid = bpf_get_current_uid_gid();
    event.rx_b = tp->bytes_received;
    event.tx_b = tp->bytes_acked;
    event.segs_out = tp->data_segs_out;
    event.segs_in = tp->data_segs_in;
    event.sport = sk->__sk_common.skc_num;
    event.dport = ntohs(sk->__sk_common.skc_dport);
    bpf_get_current_comm(&event.task, sizeof(event.task));
    if (family == AF_INET) {
        event.family = AF_INET;
        event.saddr = sk->__sk_common.skc_rcv_saddr;
        event.daddr = sk->__sk_common.skc_daddr;
    } else if (family == AF_INET6) {
        event.family = AF_INET6;
        bpf_probe_read(&event.saddr, sizeof(event.saddr),
                       sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32);
        bpf_probe_read(&event.daddr, sizeof(event.daddr),
                       sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32);
    }
    tcp_events.perf_submit(ctx, &event, sizeof(event));
    return 0;
}
";

        static void PrintEvent(tcpEvent e)
        {
            Console.Out.Write(
                "---\n" +
                "PID: " + e.pid + "\n" +
                "UID: " + e.UserId + "\n" +
                "Bytes received: " + e.rx_b + "\n" +
                "Bytes sent: " + e.tx_b + "\n" +
                "Segments out: " + e.SentPkts + "\n" +
                "Segments in: " + e.RecvPkts + "\n" +
                "Command: " + e.Command + "\n" +
                "Source: " + e.SADDR + ":" + e.SPT + "\n" +
                "Destination: " + e.DADDR + ":" + e.DPT + "\n" +
                "Event time: " + e.EventTime + "\n" +
                "---\n");
            Console.Out.Flush();
        }

        static int Main(string[] args)
        {
            long max = args.Length > 0 ? long.Parse(args[0]) : 0;
            int setupResult = 0;

            Console.CancelKeyPress += (sender, e) =>
            {
                e.Cancel = true;    // end the loop below instead of dying
                cleanup();
            };

            char[] sourceQueryAsCharArray = Source.ToCharArray();
            Thread t = new Thread(() => setupResult = setupBPF(sourceQueryAsCharArray));
            t.Start();
            Thread.Sleep(3000);

            for (long n = 0; max == 0 || n < max;) {
                tcpEvent thisEvent = DequeuePerfEvent();
                if (thisEvent.Type == 0) {
                    // No tracer: cleanup() was called, setupBPF() failed,
                    // or it is still attaching.
                    if (!t.IsAlive)
                        break;
                    Thread.Sleep(100);
                    continue;
                }
                PrintEvent(thisEvent);
                n++;
            }
            cleanup();
            t.Join();
            Console.Error.WriteLine("setupBPF returned " + setupResult);
            return setupResult == 0 ? 0 : 1;
        }
    }
}
