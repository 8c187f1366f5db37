/* 4 threads stat and write image files while the main thread forks 50 children, each of
 * which writes and reads an image file of its own and exits: prints what went wrong. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <string.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
static const char *dir; static volatile int stop; static int errors;
static void *work(void *arg){ long id=(long)arg; char p[256]; struct stat sb;
 while(!stop){ snprintf(p,sizeof p,"%s/w%ld",dir,id);
  int fd=open(p,O_RDWR|O_CREAT,0644); if(fd<0){__sync_fetch_and_add(&errors,1); continue;}
  if(write(fd,"x",1)!=1) __sync_fetch_and_add(&errors,1);
  close(fd); if(stat(p,&sb)<0) __sync_fetch_and_add(&errors,1); }
 return 0;}
int main(int c,char**v){ dir=v[1]; pthread_t t[4];
 for(long i=0;i<4;i++) pthread_create(&t[i],0,work,(void*)i);
 int bad=0;
 for(int k=0;k<50;k++){ pid_t pid=fork();
  if(pid==0){ char p[256], b[8]={0}; snprintf(p,sizeof p,"%s/child%d",dir,k);
   int fd=open(p,O_RDWR|O_CREAT|O_TRUNC,0644); if(fd<0) _exit(2);
   if(write(fd,"ok",2)!=2||pread(fd,b,2,0)!=2||memcmp(b,"ok",2)) _exit(3);
   close(fd); unlink(p); _exit(0);}
  int st; waitpid(pid,&st,0); if(!WIFEXITED(st)||WEXITSTATUS(st)) bad++; }
 stop=1; for(int i=0;i<4;i++) pthread_join(t[i],0);
 printf("children failed %d, thread errors %d\n",bad,errors); return bad||errors;}
