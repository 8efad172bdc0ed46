#!/usr/bin/perl
# A fake `runc --root R --log L --log-format json run -d --pid-file P
# --bundle B ID` for test_shim.c: forks the "container" (sh -c SCRIPT for
# $FAKE_RUNC_MODE), records its pid and exits without reaping it, as runc
# does. Perl, not sh: dash reaps finished background jobs itself.
use strict;
use warnings;
use POSIX ();

my ($pidfile, $log);
for (my $i = 0; $i < $#ARGV; $i++) {
    $pidfile = $ARGV[$i + 1] if $ARGV[$i] eq '--pid-file';
    $log = $ARGV[$i + 1] if $ARGV[$i] eq '--log';
}
my $mode = $ENV{FAKE_RUNC_MODE} // '';
my %scripts = (
    exit3  => 'echo hello; echo err >&2; printf partial; exit 3',
    early  => 'echo early >&2; sleep 0.3; exit 0',
    spam   => 'i=0; while [ $i -lt 300 ]; do '
            . 'echo "line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"; i=$((i+1)); done',
    long   => 'head -c 20000 /dev/zero | tr "\0" a; echo; echo short',
    killed => 'kill -9 $$',
    vanish => 'exit 5',
);

if ($mode eq 'fail') {
    print STDERR "some warning\n";
    print STDERR "runc run failed: exec: \"nope\": executable file not found in \$PATH\n";
    exit 1;
}
if ($mode eq 'fail_log') {
    open(my $f, '>', $log) or die "$log: $!";
    print $f "{\"level\":\"error\",\"msg\":\"from the log\"}\n";
    close $f;
    exit 1;
}
exit 0 if $mode eq 'nopid';
die "unknown mode '$mode'" unless exists $scripts{$mode};

my $pid = fork();
die "fork: $!" unless defined $pid;
if ($pid == 0) {
    exec('/bin/sh', '-c', $scripts{$mode}) or POSIX::_exit(127);
}
# early: the container writes while "runc" still runs.
select(undef, undef, undef, 0.2) if $mode eq 'early';
# vanish: unlike runc, reap the container: the shim cannot.
waitpid($pid, 0) if $mode eq 'vanish';
open(my $f, '>', $pidfile) or die "$pidfile: $!";
print $f "$pid\n";
close $f;
exit 0;
