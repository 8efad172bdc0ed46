#!/usr/bin/perl
# A fake runc for test_tasks.c: enough of runc's command line for the
# executor and its shim, with no namespaces and no rootfs. `run` starts the
# bundle's process.args (config.json) on the host with the bundle's env,
# records its pid and exits without reaping it, as `runc run -d` does, so
# the shim (a child subreaper) inherits it. `delete` and `kill` act on that
# pid. State: <root>/<id>.pid. Perl, not sh: dash reaps finished background
# jobs itself.
use strict;
use warnings;
use JSON::PP ();
use POSIX ();

my ($root, $log);
while (@ARGV && $ARGV[0] =~ /^--/) {
    my $opt = shift @ARGV;
    if ($opt eq '--root') {
        $root = shift @ARGV;
    } elsif ($opt eq '--log') {
        $log = shift @ARGV;
    } elsif ($opt eq '--log-format') {
        shift @ARGV;
    }
}
die "fake runc: no --root\n" unless defined $root;
my $cmd = shift @ARGV // die "fake runc: no command\n";

sub state_file { return "$root/$_[0].pid"; }

# A process's start time (field 22 of /proc/PID/stat): with the pid it
# names the process, so a recycled pid is never signalled.
sub start_time {
    my ($pid) = @_;
    open(my $f, '<', "/proc/$pid/stat") or return '';
    my $stat = <$f> // '';
    close $f;
    $stat =~ s/^.*\) //s;
    return (split(/ /, $stat))[19] // '';
}

# The container's pid if it still runs, else 0.
sub read_pid {
    my ($id) = @_;
    open(my $f, '<', state_file($id)) or return 0;
    my $line = <$f> // '';
    close $f;
    my ($pid, $start) = split(' ', $line);
    return 0 unless defined $start && $pid =~ /^\d+$/;
    return start_time($pid) eq $start ? $pid : 0;
}

# runc's own error, where the shim looks for it.
sub fail {
    my ($msg) = @_;
    if (defined $log && open(my $f, '>>', $log)) {
        print $f JSON::PP->new->canonical->encode({level => 'error', msg => $msg}), "\n";
        close $f;
    }
    print STDERR "$msg\n";
    exit 1;
}

if ($cmd eq 'run') {
    my ($pidfile, $bundle);
    while (@ARGV > 1) {
        my $opt = shift @ARGV;
        $pidfile = shift @ARGV if $opt eq '--pid-file';
        $bundle = shift @ARGV if $opt eq '--bundle';
    }
    my $id = shift @ARGV;
    open(my $f, '<', "$bundle/config.json") or fail("open config.json: $!");
    my $config = JSON::PP::decode_json(do { local $/; <$f> });
    close $f;
    my @args = @{$config->{process}{args}};
    my %env = map { /^([^=]*)=(.*)$/s ? ($1, $2) : () } @{$config->{process}{env} // []};
    # As runc: argv[0] is resolved in the container's PATH before it starts.
    my $exe = $args[0];
    if ($exe !~ m{/}) {
        ($exe) = grep { -x "$_/$args[0]" } split(/:/, $env{PATH} // '');
        fail("runc run failed: unable to start container process: exec: \"$args[0]\": "
             . "executable file not found in \$PATH") unless defined $exe;
        $exe = "$exe/$args[0]";
    }
    fail("runc run failed: unable to start container process: exec: \"$exe\": "
         . "stat $exe: no such file or directory") unless -x $exe;
    my $pid = fork();
    fail("fork: $!") unless defined $pid;
    if ($pid == 0) {
        %ENV = %env;
        chdir '/';
        exec { $exe } @args or POSIX::_exit(127);
    }
    open(my $p, '>', $pidfile) or fail("$pidfile: $!");
    print $p "$pid\n";
    close $p;
    open(my $s, '>', state_file($id)) or fail(state_file($id) . ": $!");
    print $s "$pid " . start_time($pid) . "\n";
    close $s;
    exit 0;
}
if ($cmd eq 'kill') {
    my ($id, $sig) = @ARGV;
    fail("container does not exist") unless -e state_file($id);
    my $pid = read_pid($id);
    kill($sig // 'TERM', $pid) if $pid;
    exit 0;
}
if ($cmd eq 'delete') {
    my $force = grep { $_ eq '--force' || $_ eq '-f' } @ARGV;
    my $id = $ARGV[-1];
    fail("container does not exist") unless -e state_file($id) || $force;
    my $pid = read_pid($id);
    fail("cannot delete container $id that is not stopped") if $pid && !$force;
    kill('KILL', $pid) if $pid;
    unlink(state_file($id));
    exit 0;
}
fail("fake runc: unsupported command $cmd");
