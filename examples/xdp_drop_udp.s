# XDP program: drop IPv4 UDP packets, pass everything else.
# r1 = struct xdp_md *; data at +0, data_end at +4.
xdp_drop_udp:
        r2 = *(u32 *)(r1 + 0)           # data
        r3 = *(u32 *)(r1 + 4)           # data_end
        r4 = r2
        r4 += 34                        # Ethernet (14) + minimal IPv4 header (20)
        if r4 > r3 goto pass            # bounds check the verifier needs
        r5 = *(u16 *)(r2 + 12)          # h_proto, network byte order
        if r5 != 0x8 goto pass          # ETH_P_IP (0x0800) read as little-endian
        r5 = *(u8 *)(r2 + 23)           # iph->protocol
        if r5 != 17 goto pass           # IPPROTO_UDP
        r0 = 1                          # XDP_DROP
        exit
pass:
        r0 = 2                          # XDP_PASS
        exit
